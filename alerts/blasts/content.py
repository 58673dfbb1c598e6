"""What an alert says, built once per blast; `MessageFactory.build` is the per-recipient path."""

from __future__ import annotations

import functools
import html
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask import Flask, current_app
from flask_babel import gettext as _
from markupsafe import Markup

from .. import i18n
from ..actions import action_link, text_of
from ..actions.references import ReferenceSigner
from ..extensions import any_of, db
from ..mail.context import external_url, org_context
from ..mail.dkim import DkimSigner, NoSigner, canon_body_relaxed, signer_for
from ..mail.mime import content_language, domain_of, format_from, message_parts, new_message_id
from ..mail.rendering import (
    CompiledEmail,
    Rendered,
    Slot,
    compile_email,
    compiled,
    encode_values,
    markdown_html,
)
from ..mail.signed_ids import MessageIds, UnsubscribeAddresses
from ..models import AbTest, Action, Alert, Signature
from ..subscribers.emails import list_unsubscribe
from ..subscribers.tokens import PREVIEW_TOKEN, TEST_SEND_TOKEN, UnsubscribeTokens
from ..tracking.links import LinkWrapper, OpenPixel, opens_tracked
from ..words import action_name
from . import personal

if TYPE_CHECKING:
    from .store import Recipient

log = logging.getLogger(__name__)

RECIPIENT_SLOTS = ("unsubscribe_url", "email")
OPEN_PIXEL_SLOT = "open_pixel"  # only in alerts compiled with TRACK_OPENS=on


def rendered_actions(alert: Alert) -> list[Action]:
    """The alert's chosen actions that are still open when the message is rendered."""
    return [a for a in alert.actions if a.is_open]


def action_slot(index: int) -> str:
    """Each action's link is a per-recipient slot: where it leads may differ per person."""
    return f"action_{index}"


def intro_slot(index: int) -> str:
    """Links staff wrote into the intro are slots too, so that they can be tracked."""
    return f"link_{index}"


MAX_URL = 1000  # longer links are sent as they are (alert_links.url holds 1,000 characters)
_HREF = re.compile(r'href="(https?://[^"]+)"')
_MD_LINK = re.compile(r"(\]\()(https?://[^\s)]+)")  # an inline Markdown link's URL: [text](URL)


@functools.lru_cache(maxsize=64)
def intro_links(intro_md: str | None) -> tuple[str, ...]:
    """The intro's web links, each once, in the order they first appear (Markdown is rendered
    once per process and intro: every batch of a blast asks)."""
    out: list[str] = []
    for match in _HREF.finditer(str(markdown_html(intro_md or ""))):
        url = html.unescape(match.group(1))
        if url not in out and len(url) <= MAX_URL:
            out.append(url)
    return tuple(out)


def frozen_links(alert: Alert) -> list[tuple[int | None, str]]:
    """What /r/ may lead to for this alert: every chosen action's link, then the intro's links
    (those of its intro in every language it is written in)."""
    urls = list(intro_links(alert.intro_md))
    for lang in alert_languages(alert)[1:]:
        urls += [u for u in intro_links(AlertText.of(alert, lang).intro_md) if u not in urls]
    return [(a.id, action_link(a)) for a in alert.actions] + [(None, u) for u in urls]


def _alert_version(alert: Alert, lang: str) -> dict | None:
    return i18n.version_in(alert.translations, lang, "subject")


def alert_languages(alert: Alert) -> list[str]:
    """The languages a message of this alert can be written in: the default, and each other
    one the alert and every action it shows have a version in (one without goes out in the
    default language, whole)."""
    return [i18n.default_language()] + [
        code for code in i18n.other_languages()
        if _alert_version(alert, code) is not None
        and all(text_of(a, code).lang == code for a in rendered_actions(alert))]


def missing_languages(alert: Alert) -> list[str]:
    """The other languages the alert itself has no version in (the staff lists' badge)."""
    return [code for code in i18n.other_languages() if _alert_version(alert, code) is None]


def alert_slots(actions: Sequence[Action | ActionText], pixel: bool = False,
                intro: int = 0) -> tuple[str, ...]:
    return (*RECIPIENT_SLOTS, *(action_slot(i) for i in range(len(actions))),
            *(intro_slot(k) for k in range(intro)), *((OPEN_PIXEL_SLOT,) if pixel else ()))


def _intro_with_slots(intro_md: str | None) -> tuple[Markup, str]:
    """The intro as HTML and as text, each web link and each greeting token replaced by its slot."""
    slot_of = {url: str(Slot(intro_slot(k))) for k, url in enumerate(intro_links(intro_md))}
    source = personal.markdown_with_slots(intro_md or "")
    rendered = str(markdown_html(source))
    intro_html = _HREF.sub(lambda m: f'href="{slot_of[html.unescape(m.group(1))]}"', rendered)
    intro_text = _MD_LINK.sub(lambda m: m.group(1) + slot_of.get(m.group(2), m.group(2)),
                              source.strip())
    # nh3-sanitised HTML whose hrefs became slot markers: nothing of the input left unescaped
    return Markup(intro_html), intro_text  # nosec B704


@dataclass(frozen=True)
class ActionText:
    id: int
    title: str
    summary: str
    call_to_action: str
    updated_at: datetime
    lang: str = ""  # "" is the default language


@dataclass(frozen=True)
class AlertText:
    """What an alert says, as plain data: variants compile mid-batch without touching the ORM."""

    id: int
    subject: str
    preheader: str
    intro_md: str
    actions: tuple[ActionText, ...]
    lang: str = ""  # "" is the default language: the fixed parts are compiled in this one

    @classmethod
    def of(cls, alert: Alert, lang: str | None = None) -> AlertText:
        """The alert's text in `lang` where it can be written in it (`alert_languages`), else
        in the default language: subject, intro and actions all from one language."""
        code = i18n.known(lang)
        version = _alert_version(alert, code) if code and code in alert_languages(alert) else None
        if version is None or code is None:
            return cls(alert.id, alert.subject, alert.preheader or "", alert.intro_md or "", tuple(
                ActionText(a.id, a.title, a.summary, a.call_to_action, a.updated_at)
                for a in rendered_actions(alert)))
        actions = []
        for a in rendered_actions(alert):
            t = text_of(a, code)
            actions.append(ActionText(a.id, t.title, t.summary, t.call_to_action, a.updated_at, code))
        return cls(alert.id, version["subject"], version.get("preheader") or "",
                   version.get("intro_md") or "", tuple(actions), code)


def _titles(titles: list[str]) -> str:
    """“A”, “A and B”, “A, B and C”, in the language being rendered."""
    if len(titles) == 1:
        return titles[0]
    return _("%(first)s and %(last)s", first=", ".join(titles[:-1]), last=titles[-1])


def alert_context(alert: Alert | AlertText, subject: str | None = None,
                  signed: frozenset[int] = frozenset()) -> dict:
    """The template's values; someone who signed some actions sees thanks and the rest first."""
    text = alert if isinstance(alert, AlertText) else AlertText.of(alert)
    actions = [
        {
            "title": a.title,
            "summary": a.summary,
            "call_to_action": a.call_to_action,
            "link": Slot(action_slot(i)),  # the slot follows the alert's order, whatever is shown
        }
        for i, a in enumerate(text.actions) if a.id not in signed
    ]
    done = [action_name(a.title) for a in text.actions if a.id in signed]
    thanks = ""
    if done:
        thanks = (_("You signed %(titles)s, thank you; now:", titles=_titles(done)) if actions
                  else _("You signed %(titles)s, thank you.", titles=_titles(done)))
    intro_html, intro_text = _intro_with_slots(text.intro_md)
    subject = subject or text.subject
    return {
        **org_context(),
        "subject": personal.line_with_slots(subject),
        # the text part's line under a subject that greets by name is as long as it is
        "subject_rule": Slot(personal.RULE_SLOT) if personal.tokens_in(subject) else "",
        "preheader": personal.line_with_slots(text.preheader),
        "intro_html": intro_html,
        "intro_text": intro_text,
        "actions": actions,
        "thanks": thanks,
    }


def compiled_alert(alert: Alert | AlertText, subject: str | None = None,
                   signed: frozenset[int] = frozenset()) -> CompiledEmail:
    """Compiled once per process for each (alert, its language and text, its open actions,
    subject, signed set), in the text's language: buttons and footer speak it too."""
    text = alert if isinstance(alert, AlertText) else AlertText.of(alert)
    version = (text.id, text.lang, subject or text.subject, text.preheader, text.intro_md,
               tuple((a.id, a.updated_at, a.title) for a in text.actions), tuple(sorted(signed)))
    slots = alert_slots(list(text.actions), opens_tracked(), len(intro_links(text.intro_md)))
    with i18n.in_language(text.lang or None):
        return compiled("alert", slots, lambda: alert_context(text, subject, signed), version)


def warm_up(app: Flask) -> None:
    """For a worker's parent, before it forks its pool: the alert templates compiled and the
    stylesheet's parse cached (premailer keeps it), so that no pool process spends ~35 ms of
    its first batch on them. A sample alert is compiled and thrown away."""
    with app.app_context():
        compile_email(app.jinja_env, "alert", alert_slots([]), **alert_context(AlertText(0, "", "", "", ())))


def encoded_pair(value: str) -> tuple[bytes, bytes]:
    """One slot value quoted-printable for the text part and (escaped) for the HTML part."""
    text = encode_values({"v": value}, html=False)
    return text["v"], encode_values({"v": value}, html=True, plain=text)["v"]


def _named(name: str, addr: str) -> str:
    """MAIL_FROM's address under another display name (an A/B variant's From name)."""
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{addr}>' if name else addr


def list_id() -> str:
    cfg = current_app.config
    if cfg.get("LIST_ID"):
        return cfg["LIST_ID"]
    name = " ".join(f"{cfg['ORG_NAME']} action alerts".replace('"', "").split())
    return f'"{name}" <alerts.{domain_of(cfg["MAIL_FROM"])}>'


@dataclass
class MessageFactory:
    """Everything per-blast computed once; `build` is the per-recipient path."""

    alert_id: int  # an id, not the ORM object: no lazy load may open a transaction mid-batch
    compiled: CompiledEmail
    from_header: str
    domain: str
    list_id: str
    unsubscribe_base: str
    serializer: UnsubscribeTokens
    signer: DkimSigner | NoSigner
    unsubscribe_address: UnsubscribeAddresses
    message_id: MessageIds
    action_links: tuple[str, ...]  # where each action's button leads, in the alert's order
    tracker: LinkWrapper | None = None  # /r/ links (None: TRACK_CLICKS=off, links go out plain)
    pixel: OpenPixel | None = None  # TRACK_OPENS=on only
    intro_urls: dict[str, str] = field(default_factory=dict)  # the intro's links, by slot
    text: AlertText | None = None
    variants: tuple[tuple[str, str], ...] = ()  # A/B: (subject, From header) per variant
    # Greeting tokens in the alert's subjects, preheader or intro ({first_name|friend}): one
    # slot each; none (most alerts) and nothing per recipient changes.
    tokens: tuple[personal.Token, ...] = ()
    subject_tokens: bool = False  # a subject greets by name: the text part's rule is a slot too
    _people: dict = field(default_factory=dict)  # subscriber id -> the fields tokens name, per batch
    _encoded: dict = field(default_factory=dict)  # a greeting's value -> (text, HTML) quoted-printable
    _variant_of: dict = field(default_factory=dict)  # delivery id -> variant, per batch
    _signed_of: dict = field(default_factory=dict)  # subscriber id -> signed action ids, per batch
    _variants: dict = field(default_factory=dict)  # (variant, signed) -> compiled: once per batch at worst
    # Which of those are hosted here and so carry the recipient's signed reference (an
    # action hosted elsewhere never sees it), and the signer of those references.
    hosted: tuple[bool, ...] = ()
    reference: ReferenceSigner | None = None
    # Whether the bodies built here are DKIM-canonical as they are (mail.mime makes them so);
    # checked on the factory's first message rather than assumed, then the signer skips it.
    _canonical: bool | None = None
    # The language its messages are written in ("": the default); hosted actions' links say
    # it (?lang=), so that the page opens in the language the email was read in.
    lang: str = ""

    @classmethod
    def for_alert(cls, alert: Alert, lang: str | None = None) -> MessageFactory:
        """The factory for readers of `lang` (else the default language): the alert's text in
        it where the alert can be written in it (`AlertText.of`), wholly the default otherwise."""
        cfg = current_app.config
        base = external_url("public.unsubscribe", token="T").rsplit("/", 1)[0] + "/"
        domain = domain_of(cfg["MAIL_FROM"])
        text = AlertText.of(alert, lang)
        intro = {intro_slot(k): url for k, url in enumerate(intro_links(text.intro_md))}
        test = db.session.get(AbTest, alert.id)
        address = parseaddr(cfg["MAIL_FROM"])
        # A variant's subject in this language: its own (`subject_<lang>`) or, for variant A
        # and any variant without one, the alert's subject in it.
        variants = tuple(
            ((v["subject"] if not text.lang else (text.subject if i == 0 else v.get(f"subject_{text.lang}")
                                                  or text.subject)),
             format_from(_named(v.get("from_name") or address[0], address[1])))
            for i, v in enumerate(test.variants if test else []))
        subjects = (text.subject, *(v[0] for v in variants))
        return cls(
            lang=text.lang,
            text=text,
            variants=variants,
            tokens=personal.tokens_in(*subjects, text.preheader, intro=text.intro_md),
            subject_tokens=bool(personal.tokens_in(*subjects)),
            alert_id=alert.id,
            compiled=compiled_alert(text),
            from_header=format_from(cfg["MAIL_FROM"]),
            domain=domain,
            list_id=list_id(),
            unsubscribe_base=base,
            serializer=UnsubscribeTokens(),
            signer=signer_for(current_app),
            unsubscribe_address=UnsubscribeAddresses(cfg),
            message_id=MessageIds.for_alert(alert.id, domain),
            action_links=tuple(action_link(a) for a in rendered_actions(alert)),
            tracker=LinkWrapper.for_alert(
                alert.id, {action_slot(i): a.id for i, a in enumerate(rendered_actions(alert))}, intro),
            pixel=OpenPixel.for_alert(alert.id),
            intro_urls=intro,
            hosted=tuple(not a.url for a in rendered_actions(alert)),
            reference=ReferenceSigner.current(),
        )

    def prepare(self, rows: Sequence[sa.Row]) -> None:
        """Per batch, before sending: each row's A/B variant and the alert's actions each signed.

        `rows` have id, subscriber_id, email and variant. One query for the batch.
        """
        self._variant_of = {r.id: r.variant for r in rows if getattr(r, "variant", None) is not None}
        ids = {a.id for a in self.text.actions} if self.text else set()
        by_email = {r.email.lower(): r.subscriber_id for r in rows if r.email and r.subscriber_id}
        subs = [r.subscriber_id for r in rows if r.subscriber_id]
        subs_set = set(subs)
        signed: dict[int, set[int]] = {}
        if ids and subs:
            for action_id, sub_id, key in db.session.execute(
                sa.select(Signature.action_id, Signature.subscriber_id, Signature.email_key).where(
                    Signature.action_id.in_(ids),
                    sa.or_(any_of(Signature.subscriber_id, subs), any_of(Signature.email_key, by_email)))
            ):
                for who in (sub_id, by_email.get(key)):
                    if who is not None and who in subs_set:
                        signed.setdefault(who, set()).add(action_id)
        self._signed_of = {k: frozenset(v) for k, v in signed.items()}
        if self.tokens:  # the fields the greetings name: the rows carry the built-in ones
            self._people = personal.people(self.tokens, rows)

    def _compiled_for(self, delivery_id: int | None, subscriber_id: int | None) -> tuple[CompiledEmail, str]:
        variant = self._variant_of.get(delivery_id)
        signed = self._signed_of.get(subscriber_id, frozenset())
        if variant is None and not signed:
            return self.compiled, self.from_header
        key = (variant, signed)
        if key not in self._variants:
            subject, from_header = self.variants[variant] if variant is not None else (None, self.from_header)
            assert self.text is not None  # for_alert sets it
            self._variants[key] = (compiled_alert(self.text, subject, signed), from_header)
        return self._variants[key]

    def action_urls(self, delivery_id: int | None, subscriber_id: int | None) -> dict[str, str]:
        """The per-recipient value of each action's slot: hosted actions' links carry `?r=`, one
        signed reference per recipient (one HMAC), naming the delivery; test sends get none."""
        if delivery_id is None or self.reference is None or not any(self.hosted):
            return {action_slot(i): link for i, link in enumerate(self.action_links)}
        ref = self.reference(delivery_id)
        return {
            action_slot(i): (f"{link}{'&' if '?' in link else '?'}r={ref}" if hosted else link)
            for i, (link, hosted) in enumerate(zip(self.action_links, self.hosted, strict=True))
        }

    @functools.cached_property
    def _link_plan(self) -> tuple[tuple[str, str, int | None, bool], ...]:
        """Per link slot, worked out once per factory: (slot, URL, its /r/ index or None,
        whether it carries the recipient's reference)."""
        hosted = self.hosted or (False,) * len(self.action_links)
        slots = [(action_slot(i), link, on) for i, (link, on) in
                 enumerate(zip(self.action_links, hosted, strict=True))]
        slots += [(slot, url, False) for slot, url in self.intro_urls.items()]
        tracker = self.tracker
        return tuple((slot, url, tracker.index_of(slot, url) if tracker else None, on)
                     for slot, url, on in slots)

    @functools.cached_property
    def _language(self) -> str:
        return self.lang or i18n.default_language()

    @functools.cached_property
    def _lang_query(self) -> str:
        return f"lang={self.lang}" if self.lang else ""

    def links(self, delivery_id: int | None) -> dict[str, str]:
        """Every link slot's value for one recipient: what `tracker.wrap` makes of `action_urls`
        and the intro's links (tests hold the two equal), without building and then taking
        apart each URL per message: one HMAC for the reference, one for the click token."""
        ref = token = None
        if delivery_id is not None:
            if self.reference is not None and any(self.hosted):
                ref = self.reference(delivery_id)
            if self.tracker is not None:
                token = self.tracker.tokens(delivery_id)
        lang = self._lang_query
        # What a link that carries the reference passes on: the same for each of this
        # message's links, worked out once (the rest pass on nothing).
        query = f"r={ref}" if ref is not None else ""
        if lang:
            query = f"{query}&{lang}" if query else lang
        tracked = None
        if token is not None:
            assert self.tracker is not None  # a token is only made by the tracker
            tracked = f"{self.tracker.base}{token}/"  # `tracker.url`'s start, once a message
        out = {}
        for slot, url, index, on, sep in self._link_plan_fast:
            if index is not None and tracked is not None:
                out[slot] = f"{tracked}{index}?{query}" if on and query else f"{tracked}{index}"
            elif on and query:
                out[slot] = f"{url}{sep}{query}"
            else:
                out[slot] = url
        return out

    @functools.cached_property
    def _link_plan_fast(self) -> tuple[tuple[str, str, int | None, bool, str], ...]:
        """`_link_plan` with each URL's separator before a query ("&" or "?")."""
        return tuple((slot, url, index, on, "&" if "?" in url else "?")
                     for slot, url, index, on in self._link_plan)

    def test_values(self) -> dict[str, str]:
        """The slots of a staff test send (no delivery, no subscriber): plain links, a sample
        unsubscribe link."""
        values = {"unsubscribe_url": self.unsubscribe_base + TEST_SEND_TOKEN, **self.links(None)}
        if self.pixel is not None:
            values[OPEN_PIXEL_SLOT] = self.pixel(None)
        return {**values, **self.greetings(self.compiled, None)}

    def greetings(self, template: CompiledEmail, person: Mapping[str, object] | None) -> dict[str, str]:
        """The greeting tokens' slots for one reader (their fields, or the fallbacks: a test
        send's reader is nameless); nothing for an alert without tokens."""
        if not self.tokens:
            return {}
        values = personal.values(self.tokens, person)
        if self.subject_tokens:
            values[personal.RULE_SLOT] = personal.rule(template.subject.fill(values))
        return values

    def _greeted(self, template: CompiledEmail, person: Mapping[str, object] | None,
                 **values: str) -> tuple[str, bytes, bytes]:
        """`personalize_qp` for an alert that greets by name: the subject filled once, and each
        distinct greeting (most readers share a few names and the fallbacks) encoded once."""
        greetings = personal.values(self.tokens, person)
        subject = template.subject.fill(greetings)
        if self.subject_tokens:
            greetings[personal.RULE_SLOT] = personal.rule(subject)
        cache = self._encoded
        if len(cache) > 50_000:
            cache.clear()
        text, html = {}, {}
        for slot, value in greetings.items():
            pair = cache.get(value)
            if pair is None:
                pair = cache[value] = encoded_pair(value)
            text[slot], html[slot] = pair
        return template.personalize_qp_with(values, subject, (text, html))

    def fields(self, delivery_id: int | None, subscriber_id: int | None, email: str,
               subject_prefix: str = "", token_key: str | None = None,
               person: Mapping[str, object] | None = None) -> dict:
        """One recipient's message before MIME: what `mime.message_parts` takes.

        `token_key` is the subscriber's: their unsubscribe link and mailto are bound to it.
        `person`: the fields the alert's greetings name (none: the fallbacks).
        """
        token = TEST_SEND_TOKEN if token_key is None else self.serializer.dumps(token_key)
        unsubscribe_url = self.unsubscribe_base + token
        links = self.links(delivery_id)
        if self.pixel is not None:
            links[OPEN_PIXEL_SLOT] = self.pixel(delivery_id)
        template, from_header = self._compiled_for(delivery_id, subscriber_id)
        if self.tokens:
            subject, text_qp, html_qp = self._greeted(template, person, unsubscribe_url=unsubscribe_url,
                                                      email=email, **links)
        else:
            subject, text_qp, html_qp = template.personalize_qp(
                unsubscribe_url=unsubscribe_url, email=email, **links)
        return {
            "from_header": from_header,
            "to": email,
            "subject": subject_prefix + subject,
            "text_qp": text_qp,
            "html_qp": html_qp,
            "message_id": (
                self.message_id(delivery_id) if delivery_id is not None else new_message_id(self.domain)
            ),
            "extra_headers": [
                ("List-Unsubscribe", list_unsubscribe(
                    unsubscribe_url, self.unsubscribe_address(token_key) if token_key else None)),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ("List-Id", self.list_id),
                ("Feedback-ID", f"alert{self.alert_id}:alerts:{self.domain}"),
                content_language(self._language),
            ],
        }

    def build(self, delivery_id: int | None, subscriber_id: int | None, email: str,
              subject_prefix: str = "", token_key: str | None = None,
              person: Mapping[str, object] | None = None) -> bytes:
        """One recipient's signed message; no delivery or subscriber means a staff test send."""
        return self.sign(self.parts(delivery_id, subscriber_id, email, subject_prefix, token_key, person))

    def parts(self, delivery_id: int | None, subscriber_id: int | None, email: str,
              subject_prefix: str = "", token_key: str | None = None,
              person: Mapping[str, object] | None = None) -> tuple[list, bytes]:
        """One recipient's message, not signed yet: (headers, body)."""
        return message_parts(**self.fields(delivery_id, subscriber_id, email, subject_prefix, token_key,
                                           person))

    def sign(self, parts: tuple[list, bytes]) -> bytes:
        """The message from `parts`, DKIM-signed and joined."""
        head, body = parts
        if self._canonical is None:  # checked on the factory's first message, then trusted
            self._canonical = canon_body_relaxed(body) == body
            if not self._canonical:
                log.warning("alert %s: message bodies are not DKIM-canonical as built; "
                            "canonicalising each one", self.alert_id)
        return self.signer.sign_parts(head, body, canonical_body=self._canonical)

    def parts_row(self, row: Recipient) -> tuple[list, bytes]:
        """`parts` for one of a batch's rows (id, subscriber_id, email, token_key)."""
        assert row.email is not None  # the loop sends only rows with an address
        person = self._people.get(row.subscriber_id) if self.tokens else None
        return self.parts(row.id, row.subscriber_id, row.email, token_key=row.token_key, person=person)


@dataclass
class FactoriesByLanguage:
    """A blast's messages, one `MessageFactory` per language it is written in; each row goes
    to its reader's (the row's `language`), else to the default's. Choosing is a dict look-up."""

    default: MessageFactory
    by_language: dict[str, MessageFactory]  # every language the alert is written in, the default's too
    _of: dict = field(default_factory=dict)  # a subscriber's language as stored -> its factory

    @classmethod
    def for_alert(cls, alert: Alert) -> FactoriesByLanguage:
        factories = {lang: MessageFactory.for_alert(alert, lang) for lang in alert_languages(alert)}
        return cls(factories[i18n.default_language()], factories)

    @property
    def tokens(self) -> tuple[personal.Token, ...]:
        """Every language's greeting tokens (the batch's query loads the fields they name)."""
        seen: dict[str, personal.Token] = {}
        for f in self.by_language.values():
            for t in f.tokens:
                seen.setdefault(t.slot, t)
        return tuple(seen.values())

    def factory_of(self, language: str | None) -> MessageFactory:
        factory = self._of.get(language)
        if factory is None:
            factory = self._of[language] = self.by_language.get(i18n.language_of(language), self.default)
        return factory

    def prepare(self, rows: Sequence[sa.Row]) -> None:
        """Each factory prepares its readers' rows (a factory with none prepares nothing)."""
        if len(self.by_language) == 1:
            self.default.prepare(rows)
            return
        groups: dict[int, list] = {}
        for r in rows:
            groups.setdefault(id(self.factory_of(getattr(r, "language", None))), []).append(r)
        for f in self.by_language.values():
            if id(f) in groups:
                f.prepare(groups[id(f)])

    def parts_row(self, row: Recipient) -> tuple[list, bytes]:
        return self.factory_of(row.language).parts_row(row)

    def sign(self, parts: tuple[list, bytes]) -> bytes:
        return self.default.sign(parts)


def preview(alert: Alert, email: str = "subscriber@example.org",
            person: Mapping[str, object] | None = personal.SAMPLE, lang: str | None = None) -> Rendered:
    """The message as a subscriber will see it (the unsubscribe link is a sample); greetings
    as `person` reads them (a sample reader by name; None: one without, the fallbacks); as a
    reader of `lang` gets it (else the default language)."""
    text = AlertText.of(alert, lang)
    query = f"?lang={text.lang}" if text.lang else ""
    links = {action_slot(i): action_link(a) + ("" if a.url else query)
             for i, a in enumerate(rendered_actions(alert))}
    links.update({intro_slot(k): url for k, url in enumerate(intro_links(text.intro_md))})
    if opens_tracked():
        links[OPEN_PIXEL_SLOT] = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEAAAAALAAAAAABAAEAAAIBAAA="
    tokens = personal.tokens_in(text.subject, text.preheader, intro=text.intro_md)
    template = compiled_alert(text)
    if tokens:
        links.update(personal.values(tokens, person))
        if personal.tokens_in(text.subject):
            links[personal.RULE_SLOT] = personal.rule(template.subject.fill(links))
    return template.personalize(
        unsubscribe_url=external_url("public.unsubscribe", token=PREVIEW_TOKEN), email=email, **links
    )
