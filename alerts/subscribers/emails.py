"""The emails the service writes to one person: a registry of kinds, one way to send them all.

Each kind is one function decorated with `@email(...)` that says what the email holds and to
whom (an `Email`), or None when there is nothing to send (confirmed meanwhile, erased). The
decorated function sends it, through `send`, the same way for every kind: From, Message-ID,
Auto-Submitted, Content-Language, and, where the kind is written to a subscriber, that
subscriber's unsubscribe link made from their `token_key` (the visible one in the footer, and
RFC 8058's List-Unsubscribe and List-Unsubscribe-Post), then the DKIM signature and the relay. A kind
written to someone who is not a subscriber says so (`subscriber=False`) and carries no
unsubscribe header. One task body and one retry policy (`alerts.tasks`) send every kind
under the task name it registers; `on_retry` is a kind's hook before a retry.

Each email is written in its reader's language, decided here for every kind: a kind's
`language` hook names it from the same arguments (a subscriber's kind: their `language`), and
the email is built, compiled and rendered inside `i18n.in_language` of it; a kind without
the hook (staff email) is written in the default language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ParamSpec

import sqlalchemy as sa
from flask import current_app

from .. import i18n, suppressions
from ..extensions import db
from ..mail import smtp
from ..mail.context import external_url
from ..mail.dkim import signer_for
from ..mail.mime import build_message, content_language, domain_of, format_from, new_message_id
from ..mail.rendering import CompiledEmail
from ..mail.signed_ids import UnsubscribeAddresses
from ..models import Subscriber
from .tokens import make_unsubscribe_token

P = ParamSpec("P")
UNSUBSCRIBE_SLOT = "unsubscribe_url"


@dataclass(frozen=True)
class Email:
    """One message of a kind, before the parts every kind shares are added."""

    to: str
    compiled: CompiledEmail
    return_path: str
    # The template's slots but `email` and (for a subscriber's email) `unsubscribe_url`.
    values: Mapping[str, str] = field(default_factory=dict)
    # The subscriber it is written to, whose unsubscribe link it carries (subscriber kinds).
    token_key: str | None = None
    subject_prefix: str = ""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Kind:
    """A registered kind of email: what the shared path and the one retry policy need to know."""

    name: str
    task: str  # the Celery task name it is queued under (a contract with running workers)
    build: Callable[..., Email | None]
    subscriber: bool  # written to a subscriber (its first argument is their id): unsubscribe links
    auto_submitted: bool = True  # RFC 3834: not a person's message, no vacation replies
    on_retry: Callable[..., None] | None = None  # before a retry after a passing failure
    # The reader's language from the kind's arguments (None or unknown: the default).
    language: Callable[..., str | None] | None = None

    def language_for(self, *args: object, **kwargs: object) -> str:
        """The language an email of this kind with these arguments is written in."""
        if self.language is None:
            return i18n.default_language()
        return i18n.language_of(self.language(*args, **kwargs))

    def send(self, *args: object) -> bool:
        """Build and send one (what its task runs); raises what the relay raised."""
        return send(self, *args)


KINDS: dict[str, Kind] = {}


def email(name: str, *, task: str, subscriber: bool, auto_submitted: bool = True,
          on_retry: Callable[..., None] | None = None, language: Callable[..., str | None] | None = None
          ) -> Callable[[Callable[P, Email | None]], Callable[P, bool]]:
    """Register a kind of email; the decorated function builds it, the returned one sends it
    (True when sent, False when there was nothing to send). Raises what the relay raised.

    `language` names the reader's language from the same arguments; a subscriber's kind
    without one reads it from the subscriber (its first argument is their id)."""

    def register(build: Callable[P, Email | None]) -> Callable[P, bool]:
        if name in KINDS:
            raise ValueError(f"the email kind {name!r} is registered twice")
        kind = Kind(name=name, task=task, build=build, subscriber=subscriber,
                    auto_submitted=auto_submitted, on_retry=on_retry,
                    language=language or (subscriber_language if subscriber else None))
        KINDS[name] = kind

        def sender(*args: P.args, **kwargs: P.kwargs) -> bool:
            return send(kind, *args, **kwargs)

        sender.__name__ = build.__name__
        sender.__doc__ = build.__doc__
        sender.__qualname__ = build.__qualname__
        sender.kind = kind  # type: ignore[attr-defined]
        return sender

    return register


def kind(name: str) -> Kind:
    return KINDS[name]


def subscriber_language(subscriber_id: int, *_args: object, **_kwargs: object) -> str | None:
    """A subscriber's own language (None: not known, or no such subscriber)."""
    return db.session.scalar(sa.select(Subscriber.language).where(Subscriber.id == subscriber_id))


def unsubscribe_url(token_key: str) -> str:
    """The subscriber's unsubscribe page, also the RFC 8058 one-click target."""
    return external_url("public.unsubscribe", token=make_unsubscribe_token(token_key))


def list_unsubscribe(url: str, mailto: str | None) -> str:
    """The https link, plus a signed mailto on BOUNCE_DOMAIN that the bounce receiver acts on.

    Without BOUNCE_DOMAIN there is no mailto: an address that no one reads would leave a
    reader who uses it subscribed.
    """
    if mailto is None:
        return f"<{url}>"
    return f"<{url}>, <mailto:{mailto}?subject=unsubscribe>"


def message(kind: Kind, mail: Email, language: str | None = None) -> bytes:
    """The signed bytes of one email of this kind, written in `language` (else the one being
    rendered now)."""
    cfg = current_app.config
    values = dict(mail.values)
    headers: list[tuple[str, str]] = [content_language(language or i18n.current())]
    if kind.auto_submitted:
        headers.append(("Auto-Submitted", "auto-generated"))
    if kind.subscriber:
        if not mail.token_key:
            raise ValueError(f"a {kind.name} email is written to a subscriber and needs their token_key")
        url = unsubscribe_url(mail.token_key)
        values[UNSUBSCRIBE_SLOT] = url
        headers += [("List-Unsubscribe", list_unsubscribe(url, UnsubscribeAddresses(cfg)(mail.token_key))),
                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
    headers += mail.headers
    rendered = mail.compiled.personalize(**values, email=mail.to)
    data = build_message(
        from_header=format_from(cfg["MAIL_FROM"]), to=mail.to,
        subject=mail.subject_prefix + rendered.subject, text=rendered.text, html=rendered.html,
        message_id=new_message_id(domain_of(cfg["MAIL_FROM"])), extra_headers=headers,
    )
    return signer_for(current_app).sign(data)


def send(kind: Kind, *args: object, **kwargs: object) -> bool:
    """Build one email of `kind` in its reader's language and hand it to the relay; False when
    there is nothing to send."""
    with i18n.in_language(kind.language_for(*args, **kwargs)) as language:
        mail = kind.build(*args, **kwargs)
        if mail is None or suppressions.is_suppressed(mail.to):
            return False
        data = message(kind, mail, language)
    cfg = current_app.config
    smtp.send_one(cfg["SMTP_URL"], mail.return_path, mail.to, data, cfg["SMTP_TIMEOUT"])
    return True

