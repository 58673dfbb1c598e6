"""Composing alerts: the checks shared by the staff pages and the command line."""

from __future__ import annotations

import sqlalchemy as sa

from .. import audiences, i18n
from ..actions import open_actions
from ..extensions import db
from ..models import Action, Alert, AlertState
from . import personal


class ComposeError(ValueError):
    """What stops a draft being saved; `field` names the form field at fault, where one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def check_tokens(subject: str, preheader: str, intro_md: str) -> None:
    """Every greeting token ({first_name|friend}) names a subscriber field, or ComposeError
    names the one that does not, and the fields there are."""
    known = personal.known_keys()
    for name, text, markdown in (("subject", subject, False), ("preheader", preheader, False),
                                 ("intro_md", intro_md, True)):
        problem = personal.unknown(text, known, markdown=markdown)
        if problem:
            label = "the intro" if name == "intro_md" else f"the {name}"
            raise ComposeError(f"{label}: {problem}", field=name)


TRANSLATED_FIELDS = ("subject", "preheader", "intro_md")


def clean_translation(lang: str, version: dict[str, str | None]) -> dict[str, str]:
    """An alert's text in another language, checked as the default's is (a subject unless it
    is all blank, lengths, greeting tokens); errors name the form field (`subject_es`)."""
    name = i18n.STAFF_NAMES.get(lang, lang)
    subject = " ".join((version.get("subject") or "").split())
    preheader = " ".join((version.get("preheader") or "").split())
    intro_md = (version.get("intro_md") or "").strip()
    if not (subject or preheader or intro_md):
        return {}
    if not subject:
        raise ComposeError(f"the {name} version needs a subject (or leave it all blank)",
                           field=f"subject_{lang}")
    for field, value in (("subject", subject), ("preheader", preheader)):
        if len(value) > 200:
            raise ComposeError(f"the {name} {field} is {len(value)} characters; at most 200",
                               field=f"{field}_{lang}")
    if len(intro_md) > 20_000:
        raise ComposeError(f"the {name} intro is longer than 20,000 characters", field=f"intro_md_{lang}")
    try:
        check_tokens(subject, preheader, intro_md)
    except ComposeError as exc:
        raise ComposeError(f"{name}: {exc}", field=f"{exc.field}_{lang}") from None
    return {k: v for k, v in (("subject", subject), ("preheader", preheader), ("intro_md", intro_md)) if v}


def _clean_line(value: str | None, name: str, limit: int, required: bool) -> str:
    value = " ".join((value or "").split())
    if required and not value:
        raise ComposeError(f"{name} is required")
    if len(value) > limit:
        raise ComposeError(f"{name} is {len(value)} characters; at most {limit}")
    return value


def resolve_actions(slugs: list[str] | None) -> list[Action]:
    """The chosen actions by slug, or every open action when none are named."""
    if not slugs:
        return open_actions()
    found = {a.slug: a for a in db.session.scalars(sa.select(Action).where(Action.slug.in_(slugs)))}
    missing = [s for s in slugs if s not in found]
    if missing:
        known = db.session.scalars(sa.select(Action.slug).order_by(Action.position, Action.id)).all()
        listing = "".join(f"\n  {slug}" for slug in known) or " none yet (run alerts seed-actions)"
        raise ComposeError(f"no action with slug {', '.join(missing)}; the actions are:{listing}")
    return [found[s] for s in dict.fromkeys(slugs)]


def intro_names(intro_md: str | None, actions: list[Action]) -> list[str]:
    """The actions' titles the intro names. Someone who signed one gets a copy that leaves it
    out of the list and thanks them for it, while the intro, the same for everyone, still asks."""
    said = " ".join((intro_md or "").split()).casefold()
    return [a.title for a in actions if a.title and " ".join(a.title.split()).casefold() in said]


def save_alert(
    alert: Alert | None,
    *,
    subject: str,
    intro_md: str,
    preheader: str = "",
    action_slugs: list[str] | None = None,
    created_by: str | None = None,
    audience: dict | None = None,
    translations: dict[str, dict[str, str | None]] | None = None,
) -> Alert:
    """Create a draft, or edit one; only drafts (and journey steps' standing alerts) can change.
    `translations`: the text in other languages, by language (None keeps what the draft has; a
    version all blank is removed)."""
    if alert is not None and alert.state not in (AlertState.DRAFT, AlertState.JOURNEY):
        raise ComposeError(f"alert {alert.id} is {alert.state}; only a draft can be edited")
    subject = _clean_line(subject, "subject", 200, True)
    preheader = _clean_line(preheader, "preheader", 200, False)
    if len(intro_md or "") > 20_000:
        raise ComposeError("the intro is longer than 20,000 characters")
    check_tokens(subject, preheader, intro_md or "")
    versions = None
    if translations is not None:
        versions = dict((alert.translations or {}) if alert is not None else {})
        for lang, version in translations.items():
            code = i18n.known(lang)
            if code is None or code == i18n.default_language():
                others = ", ".join(i18n.other_languages())
                raise ComposeError(f"“{lang}” is not one of the other languages ({others})")
            cleaned = clean_translation(code, version)
            if cleaned:
                versions[code] = cleaned
            else:
                versions.pop(code, None)
    actions = resolve_actions(action_slugs)
    try:
        rules = audiences.parse(audience)
    except audiences.AudienceError as exc:
        raise ComposeError(f"audience: {exc}") from exc
    if alert is None:
        alert = Alert(created_by=created_by)
        db.session.add(alert)
    alert.subject = subject
    alert.preheader = preheader
    alert.intro_md = (intro_md or "").strip()
    alert.actions = actions
    alert.audience = rules.to_json() or None
    if versions is not None:
        alert.translations = versions or None
    db.session.flush()  # the id, for the caller to show; the caller commits
    return alert


REMINDER_PREFIX = "Reminder: "
FINISHED = (AlertState.SENT, AlertState.CANCELLED)  # a reminder follows a blast that has ended


def reminder_subject(subject: str) -> str:
    """"Reminder: " and the subject, once: reminding a reminder does not repeat the prefix."""
    while subject[:len(REMINDER_PREFIX)].lower() == REMINDER_PREFIX.lower():
        subject = subject[len(REMINDER_PREFIX):].lstrip()
    return (REMINDER_PREFIX + subject)[:200]


def reminder(alert_id: int, *, minus_clickers: bool, created_by: str | None = None,
             subject: str | None = None) -> Alert:
    """A new draft to the alert's recipients minus those who signed (optionally minus clickers)."""
    source = db.session.get(Alert, alert_id)
    if source is None:
        raise ComposeError(f"there is no alert {alert_id}")
    if source.state not in FINISHED:
        raise ComposeError(f"alert {alert_id} is {source.state}; only an alert whose sending has "
                           "finished can be followed by a reminder")
    try:
        rules = audiences.reminder_rules(source, minus_clickers=minus_clickers)
    except audiences.AudienceError as exc:
        raise ComposeError(f"audience: {exc}") from exc
    subject = subject or reminder_subject(source.subject)
    draft = save_alert(None, subject=subject[:200], intro_md=source.intro_md, preheader=source.preheader,
                       action_slugs=[a.slug for a in source.actions if a.is_open] or None,
                       created_by=created_by, audience=rules.to_json())
    draft.parent_id = source.id
    if source.translations:  # the reminder speaks each language the alert did
        draft.translations = {
            lang: {**v, "subject": (REMINDER_WORDS.get(lang, "") + v["subject"])[:200]}
            if v.get("subject") and not subject else dict(v)
            for lang, v in source.translations.items() if isinstance(v, dict)}
    return draft


# "Reminder: " in each other language (the default's is REMINDER_PREFIX).
REMINDER_WORDS = {"es": "Recordatorio: "}
