"""What a signup form asks for besides the address (staff's choice of fields), read and checked
in one place for the site's form and the embedded one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _

from .. import i18n
from . import fields, people, subscriptions

LANGUAGE_INPUT = "language"  # the hidden input that carries the page's language


def input_name(fdef: fields.FieldDef) -> str:
    """The form field's name: a built-in's key, a custom field's key behind `field_` (so no
    custom key can take the name of the address, the honeypot or a token)."""
    return fdef.key if fdef.builtin else f"field_{fdef.key}"


@dataclass
class Entry:
    """The form's answers: as typed (to show again), as kept, and what is wrong, by field key."""

    typed: dict[str, list[str]] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _message(label: str, problem: str, predicate: bool) -> str:
    if predicate:
        return _("%(label)s %(problem)s", label=label, problem=problem)
    return _("%(label)s: %(problem)s", label=label, problem=problem)


# What subscriptions.normalize_email says, in the reader's language.
_EMAIL_MESSAGES = {"Please enter your email address.", "That doesn't look like an email address."}


def email_message(exc: subscriptions.InvalidEmail) -> str:
    """An address refused, in the page's language: the address checker's detailed reason is
    English only, so another language gets the plain one."""
    text = str(exc)
    if text == "Please enter your email address.":
        return _("Please enter your email address.")
    if text in _EMAIL_MESSAGES or i18n.current() != "en":
        return _("That doesn't look like an email address.")
    return text


def page_language(getlist: Callable[[str], list[str]]) -> str | None:
    """The language of the page the form was on (its hidden input), if it is one of LANGUAGES."""
    given = getlist(LANGUAGE_INPUT)
    return i18n.known(given[0]) if given else None


def read(getlist: Callable[[str], list[str]], defs: list[fields.FieldDef] | None = None) -> Entry:
    """The signup fields' answers from a posted form (`getlist`: the form's MultiDict.getlist).

    Only non-empty answers are kept: an optional field left blank clears nothing."""
    defs = fields.signup_form_fields() if defs is None else fields.for_form(defs)
    entry = Entry()
    builtin: dict[str, object] = {}
    custom: dict[str, object] = {}
    for fdef in defs:
        typed = [v[:fields.VALUE_MAX * 2] for v in getlist(input_name(fdef))][:fields.CHOICES_MAX]
        entry.typed[fdef.key] = typed
        if fdef.builtin:
            value = typed[0] if typed else ""
            if fdef.required and not value.strip():
                entry.errors[fdef.key] = _("%(label)s is required", label=fdef.label)
            builtin[fdef.key] = value
        else:
            custom[fdef.key] = typed
    try:
        cleaned = people.clean_profile(builtin)
    except people.ProfileError as exc:
        labels = {f.key: f.label for f in defs}
        for key, problem in exc.errors.items():
            entry.errors.setdefault(key, _message(labels.get(key, key), problem, key in exc.predicates))
        cleaned = {}
    entry.profile.update({k: v for k, v in cleaned.items() if v})
    language = page_language(getlist)
    if language:
        entry.profile["language"] = language
    try:
        values = fields.clean_values(custom, [f for f in defs if not f.builtin], require=True)
    except fields.FieldError as exc:
        entry.errors.update(exc.errors)
        values = {}
    kept = {k: v for k, v in values.items() if v}
    if kept:
        entry.profile["fields"] = kept
    return entry


def shown(profile: dict[str, Any] | None) -> list[tuple[str, str]]:
    """What a signup typed, as (label, value) lines for the page that asks its owner to keep it."""
    if not profile:
        return []
    defs = fields.by_key()
    out: list[tuple[str, str]] = []
    for key in fields.BUILTIN_KEYS:
        if profile.get(key):
            value = str(profile[key])
            out.append((defs[key].label, fields.shown_phone(value) if key == "phone" else value))
    for key, values in (profile.get("fields") or {}).items():
        fdef = defs.get(key)
        if fdef is not None and values:
            out.append((fdef.label, fields.shown(fdef, values)))
    return out
