"""The welcome email after confirmation: staff-editable text pointing to the open actions.

Sent once per confirmation: the claim is one conditional UPDATE that records which
confirmation (its `confirmed_at`) was welcomed, so a retried or duplicated task sends nothing
more, and someone who unsubscribes and confirms again is welcomed again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from .. import i18n, queueing, tasknames
from ..actions import action_link, open_actions, text_of
from ..extensions import db
from ..mail.context import org_context
from ..mail.rendering import CompiledEmail, compiled, markdown_html
from ..mail.signed_ids import return_path
from ..models import EmailText, Subscriber, SubscriberStatus, utcnow
from . import emails

NAME = "welcome"
SLOTS = (emails.UNSUBSCRIBE_SLOT, "email")


def default_subject() -> str:
    """The subject until staff write one, in the language being rendered."""
    return _("Welcome to %(org)s action alerts", org=current_app.config["ORG_NAME"])


def default_body() -> str:
    """The text until staff write one, in the language being rendered."""
    return _("Thank you for joining us. Every few weeks we will email you when children need your voice: "
             "a petition to sign, a pledge to take, a decision-maker to call.\n\n"
             "You don't have to wait for the first alert. These actions are open now:")


class WelcomeError(ValueError):
    pass


def text() -> EmailText:
    """The staff-edited text, or the default (not stored until staff save it)."""
    row = db.session.get(EmailText, NAME)
    if row is None:
        with i18n.in_language(i18n.default_language()):
            row = EmailText(name=NAME, subject=default_subject(), body_md=default_body(), enabled=True)
        versions = {}
        for lang in i18n.other_languages():  # the catalogue's words, where it has them
            with i18n.in_language(lang):
                version = {"subject": default_subject(), "body_md": default_body()}
            if version != {"subject": row.subject, "body_md": row.body_md}:
                versions[lang] = version
        row.translations = versions or None
    return row


def languages_of(row: EmailText) -> list[str]:
    """The languages the welcome can be written in: the default, and each other one the text
    and every open action it lists have a version in (else it goes in the default, whole)."""
    actions = open_actions()
    return [i18n.default_language()] + [
        code for code in i18n.other_languages()
        if i18n.version_in(row.translations, code, "subject") is not None
        and all(text_of(a, code).lang == code for a in actions)]


def text_in(row: EmailText, lang: str | None) -> tuple[str, str, str]:
    """(language, subject, text) of the welcome for a reader of `lang`: all in one language."""
    code = i18n.known(lang)
    if code is None or code not in languages_of(row) or code == i18n.default_language():
        return i18n.default_language(), row.subject, row.body_md
    version = i18n.version_in(row.translations, code, "subject") or {}
    return code, version["subject"], version.get("body_md") or ""


def _clean(subject: str | None, body_md: str | None, name: str = "") -> tuple[str, str]:
    subject = " ".join((subject or "").split())
    if not subject:
        raise WelcomeError(f"the {name}subject is required")
    if len(subject) > 200:
        raise WelcomeError(f"the {name}subject is longer than 200 characters")
    if len(body_md or "") > 20_000:
        raise WelcomeError(f"the {name}text is longer than 20,000 characters")
    return subject, (body_md or "").strip()


def save_text(subject: str, body_md: str, enabled: bool,
              translations: dict[str, dict[str, str | None]] | None = None) -> EmailText:
    """Save the welcome's text; `translations` (by language) replaces its other versions (a
    version all blank is removed; None keeps them as they are)."""
    subject, body_md = _clean(subject, body_md)
    stored = db.session.get(EmailText, NAME)
    # A first text of staff's own keeps no default version in another language: those are
    # the default's words, not a translation of theirs (the staff page shows and sends them).
    versions = dict(stored.translations or {}) if stored is not None else {}
    for lang, version in (translations or {}).items():
        code = i18n.known(lang)
        if code is None or code == i18n.default_language():
            raise WelcomeError(f"“{lang}” is not one of the other languages")
        if not any((v or "").strip() for v in version.values()):
            versions.pop(code, None)
            continue
        name = f"{i18n.STAFF_NAMES.get(code, code)} "
        es_subject, es_body = _clean(version.get("subject"), version.get("body_md"), name)
        versions[code] = {"subject": es_subject, "body_md": es_body}
    row = db.session.get(EmailText, NAME) or EmailText(name=NAME)
    row.subject, row.body_md, row.enabled = subject, body_md, bool(enabled)
    row.translations = versions or None
    db.session.add(row)
    db.session.flush()
    return row


# The sweep sends welcomes whose task was lost (a broker outage at the confirmation, a retry
# that gave up) once the task has had this long, for confirmations up to an hour old: a
# welcome that arrives hours late reads as a mistake, and people confirmed before the
# welcome existed are never welcomed.
SWEEP_GRACE = timedelta(minutes=2)
SWEEP_WINDOW = timedelta(hours=1)


def queue(subscriber_id: int) -> None:
    """After the confirmation commits (a broker outage loses no confirmation; the sweep
    sends the welcome later: `unsent`)."""
    queueing.after_commit(tasknames.SEND_WELCOME, subscriber_id)


def unsent(limit: int = 1000, now: datetime | None = None) -> list[int]:
    """Recent confirmations not yet welcomed, past the grace its own task had (the sweep queues
    them after its commit; `send_welcome`'s claim keeps it to one welcome however often).

    A confirmation whose welcome is settled otherwise (an import that did not ask for one
    sets `welcomed_for`) is not among them."""
    if not text().enabled:
        return []
    now = now or utcnow()
    return list(db.session.scalars(
        sa.select(Subscriber.id)
        .where(Subscriber.status == SubscriberStatus.CONFIRMED,
               Subscriber.confirmed_at.between(now - SWEEP_WINDOW, now - SWEEP_GRACE),
               sa.or_(Subscriber.welcomed_for.is_(None), Subscriber.welcomed_for != Subscriber.confirmed_at))
        .order_by(Subscriber.id)
        .limit(limit)
    ))


def _context(lang: str, subject: str, body_md: str) -> dict:
    query = "" if lang == i18n.default_language() else f"?lang={lang}"
    actions = []
    for a in open_actions():
        t = text_of(a, lang)
        actions.append({"title": t.title, "summary": t.summary, "call_to_action": t.call_to_action,
                        "link": action_link(a) + ("" if a.url else query)})
    return {
        **org_context(),
        "subject": subject,
        "body_html": markdown_html(body_md),
        "body_text": body_md,
        "actions": actions,
    }


def compiled_welcome(lang: str | None = None) -> CompiledEmail:
    """The welcome as a reader of `lang` gets it, compiled in its language (buttons, footer)."""
    code, subject, body_md = text_in(text(), lang)
    actions = open_actions()
    version = (code, subject, body_md, tuple((a.id, a.updated_at) for a in actions))
    with i18n.in_language(code):
        return compiled(NAME, SLOTS, lambda: _context(code, subject, body_md), version)


def _claim(subscriber_id: int) -> Subscriber | None:
    """Take the right to welcome this confirmation (one conditional UPDATE; commits)."""
    res = db.session.execute(
        sa.update(Subscriber)
        .where(Subscriber.id == subscriber_id, Subscriber.status == SubscriberStatus.CONFIRMED,
               Subscriber.confirmed_at.is_not(None),
               sa.or_(Subscriber.welcomed_for.is_(None), Subscriber.welcomed_for != Subscriber.confirmed_at))
        .values(welcomed_for=Subscriber.confirmed_at)
    )
    db.session.commit()
    return db.session.get(Subscriber, subscriber_id) if cast(sa.CursorResult, res).rowcount == 1 else None


def release(subscriber_id: int) -> None:
    """A send that failed for a passing reason gives the claim back, so the retry can send."""
    db.session.execute(sa.update(Subscriber).where(Subscriber.id == subscriber_id)
                       .values(welcomed_for=None))
    db.session.commit()


def _language(subscriber_id: int, *_args: object, **_kwargs: object) -> str:
    """The language the welcome is written in for this subscriber: theirs where the welcome
    (and every action it lists) has a version in it, else the default, so that its fixed parts
    (buttons, footer, Content-Language) never speak another language than its text."""
    return text_in(text(), emails.subscriber_language(subscriber_id))[0]


@emails.email(NAME, task=tasknames.SEND_WELCOME, subscriber=True, on_retry=release, language=_language)
def send_welcome(subscriber_id: int) -> emails.Email | None:
    """The welcome, once for the subscriber's current confirmation; None when not to be sent.

    Commits its claim (so two workers cannot both send); a passing failure releases it.
    """
    if not text().enabled:
        return None
    sub = _claim(subscriber_id)
    if sub is None:
        return None
    # A bounce of the welcome counts as one of the subscriber's confirmation mail ("c").
    return emails.Email(to=sub.email, compiled=compiled_welcome(sub.language), token_key=sub.token_key,
                        return_path=return_path("c", sub.id))
