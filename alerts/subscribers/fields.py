"""What staff know about a person beyond the address: the built-in profile fields and the
custom fields staff define, their values checked in one place for every way in.

Built-in fields (first_name, last_name, postal_code, phone) are columns of `subscribers`;
their settings (label, shown on the signup form, required there) live in `subscriber_fields`
only once staff change them. Custom fields are rows of `subscriber_fields`; their values are
rows of `subscriber_field_values`, one per choice for a several-choices field. Functions here
never commit: the view, command or task that calls them does.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation

import phonenumbers
import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import event
from sqlalchemy.orm import Session

from .. import i18n
from ..extensions import any_of, db
from ..models import SubscriberField, SubscriberFieldValue

KINDS = ("text", "number", "date", "choice", "choices", "checkbox")
KIND_NAMES = {"text": "Text", "number": "Number", "date": "Date", "choice": "One choice",
              "choices": "Several choices", "checkbox": "Checkbox", "phone": "Phone number"}
BUILTIN_KEYS = ("first_name", "last_name", "postal_code", "phone")
# Names a custom field may not take: the built-ins, and what imports, exports and the API
# already mean by them.
RESERVED = frozenset({*BUILTIN_KEYS, "email", "status", "source", "language", "fields", "id",
                      "created_at", "confirmed_at", "unsubscribed_at", "consent", "name", "topics"})
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
VALUE_MAX = 500
CHOICES_MAX = 50
CHOICE_MAX = 100
LABEL_MAX = 100
SEPARATOR = ";"  # between the choices of a several-choices value in CSV files
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_YES = {"yes", "y", "true", "1", "on", "x", "checked", "si", "sí"}
_NO = {"no", "n", "false", "0", "off", ""}


@dataclass(frozen=True)
class FieldDef:
    key: str
    label: str
    kind: str  # one of KINDS, or "text"/"phone" for a built-in
    choices: tuple[str, ...] = ()
    required: bool = False
    on_signup: bool = False
    builtin: bool = False
    id: int | None = None
    position: int = 0

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, self.kind)


# The built-in fields' own labels in the reader's language (a label staff changed is shown as typed).
BUILTIN_LABELS = {"first_name": _l("First name"), "last_name": _l("Last name"),
                  "postal_code": _l("Postal code"), "phone": _l("Phone")}
BUILTINS = (
    FieldDef("first_name", "First name", "text", on_signup=True, builtin=True),
    FieldDef("last_name", "Last name", "text", builtin=True),
    FieldDef("postal_code", "Postal code", "text", on_signup=True, builtin=True),
    FieldDef("phone", "Phone", "phone", builtin=True),
)


class FieldError(ValueError):
    """Values or settings that cannot be kept as given: {field key: message}."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _def_of(row: SubscriberField, builtin: FieldDef | None = None) -> FieldDef:
    if builtin is not None:
        return replace(builtin, label=row.label or builtin.label, required=row.required,
                       on_signup=row.on_signup or row.required, id=row.id)
    return FieldDef(row.key, row.label, row.kind, tuple(row.choices or ()), row.required,
                    row.on_signup or row.required, False, row.id, row.position)


def definitions() -> list[FieldDef]:
    """Every field: the built-ins first (with staff's settings), then the custom ones in order."""
    rows = {r.key: r for r in db.session.scalars(
        sa.select(SubscriberField).order_by(SubscriberField.position, SubscriberField.id))}
    out = [_def_of(rows[b.key], b) if b.key in rows else b for b in BUILTINS]
    out += [_def_of(r) for key, r in rows.items() if key not in BUILTIN_KEYS]
    return out


def shown_label(fdef: FieldDef) -> str:
    """What a form calls the field: a built-in's own label in the reader's language, unless staff
    changed it (then as staff wrote it)."""
    default = next((b.label for b in BUILTINS if b.key == fdef.key), None) if fdef.builtin else None
    if default is not None and fdef.label == default:
        return str(BUILTIN_LABELS[fdef.key])
    return fdef.label


def for_form(defs: Iterable[FieldDef]) -> list[FieldDef]:
    """The fields with the labels a signup form shows (see shown_label)."""
    return [replace(f, label=shown_label(f)) for f in defs]


def custom() -> list[FieldDef]:
    return [f for f in definitions() if not f.builtin]


def signup_fields() -> list[FieldDef]:
    """The fields the signup forms ask for, in order."""
    return [f for f in definitions() if f.on_signup]


# The signup forms' fields as shown, per language, read again at most this often in a process:
# a signup (the hot path of a viral moment) does not query the definitions each time. A change
# made through `define`, `change` or `remove` is seen at once by the process that made it,
# within this long by the others.
SIGNUP_CACHE_SECONDS = 5.0
_CHANGED = "alerts.fields_changed"


class _SignupCache:
    by_language: dict[str, list[FieldDef]] = {}
    read_at = -1e9


def signup_form_fields() -> list[FieldDef]:
    """`for_form(signup_fields())` in the current language, cached per process (see above)."""
    now = time.monotonic()
    if now - _SignupCache.read_at > SIGNUP_CACHE_SECONDS:
        _SignupCache.by_language, _SignupCache.read_at = {}, now
    language = i18n.current()
    found = _SignupCache.by_language.get(language)
    if found is None:
        found = _SignupCache.by_language[language] = for_form(signup_fields())
    return list(found)


def forget() -> None:
    """Read the definitions again at the next signup (this process changed them)."""
    _SignupCache.by_language, _SignupCache.read_at = {}, -1e9


def _changed() -> None:
    db.session.info[_CHANGED] = True
    forget()


@event.listens_for(Session, "after_commit")
def _forget_committed(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        forget()  # (what was read between the change and its commit is not kept)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        forget()


def by_key() -> dict[str, FieldDef]:
    return {f.key: f for f in definitions()}


def _clean_choices(kind: str, choices: Iterable[str], errors: dict[str, str]) -> list[str]:
    if kind not in ("choice", "choices"):
        return []
    out: list[str] = []
    for raw in choices:
        choice = " ".join(str(raw).split())
        if not choice:
            continue
        if len(choice) > CHOICE_MAX or _CONTROL.search(choice) or SEPARATOR in choice:
            errors["choices"] = (f"each choice is one line of at most {CHOICE_MAX} characters, "
                                 f"without '{SEPARATOR}'")
        elif choice.casefold() in {c.casefold() for c in out}:
            errors["choices"] = f"the choice {choice!r} is listed twice"
        out.append(choice)
    if not out:
        errors["choices"] = "list at least one choice, one per line"
    elif len(out) > CHOICES_MAX:
        errors["choices"] = f"at most {CHOICES_MAX} choices"
    return out


def _clean_label(label: str, errors: dict[str, str]) -> str:
    label = " ".join(str(label or "").split())
    if not label:
        errors["label"] = "give the field a label: what the form and the staff pages call it"
    elif len(label) > LABEL_MAX or _CONTROL.search(label):
        errors["label"] = f"one line of at most {LABEL_MAX} characters"
    return label


def define(key: str, label: str, kind: str, choices: Iterable[str] = (), *, required: bool = False,
           on_signup: bool = False) -> SubscriberField:
    """A new custom field; FieldError names every setting at fault. The caller commits."""
    _changed()
    errors: dict[str, str] = {}
    key = (key or "").strip().lower()
    if not KEY_PATTERN.match(key):
        errors["key"] = ("a key is a lower-case letter, then letters, digits or _, "
                         "at most 40 characters (like school_district)")
    elif key in RESERVED:
        errors["key"] = f"{key!r} is already a field of every subscriber; choose another key"
    elif db.session.scalar(sa.select(SubscriberField.id).where(SubscriberField.key == key)):
        errors["key"] = f"there is a field {key!r} already"
    label = _clean_label(label, errors)
    if kind not in KINDS:
        errors["kind"] = f"one of {', '.join(KINDS)}"
    cleaned = _clean_choices(kind, choices, errors)
    if errors:
        raise FieldError(errors)
    last = db.session.scalar(sa.select(sa.func.max(SubscriberField.position))) or 0
    row = SubscriberField(key=key, label=label, kind=kind, choices=cleaned or None,
                          required=required, on_signup=on_signup or required, position=last + 1)
    db.session.add(row)
    db.session.flush()
    return row


def change(key: str, *, label: str, required: bool, on_signup: bool,
           choices: Iterable[str] | None = None) -> FieldDef:
    """Change a field's settings (a built-in's or a custom one's; never its key or kind).

    A choice taken away leaves the values already given as they are, shown to staff; it is
    no longer offered. The caller commits."""
    _changed()
    fdef = by_key().get(key)
    if fdef is None:
        raise FieldError({"key": f"there is no field {key!r}"})
    errors: dict[str, str] = {}
    label = _clean_label(label, errors)
    cleaned = _clean_choices(fdef.kind, choices if choices is not None else fdef.choices, errors)
    if errors:
        raise FieldError(errors)
    row = db.session.scalar(sa.select(SubscriberField).where(SubscriberField.key == key))
    if row is None:  # a built-in's first change
        row = SubscriberField(key=key, kind=fdef.kind, position=0)
        db.session.add(row)
    row.label, row.required, row.on_signup = label, required, on_signup or required
    if not fdef.builtin:
        row.choices = cleaned or None
    db.session.flush()
    return by_key()[key]


def remove(key: str) -> None:
    """Delete a custom field and every value of it. The caller commits."""
    _changed()
    if key in BUILTIN_KEYS:
        raise FieldError({"key": f"{key!r} is built in; it can be hidden from the form, not removed"})
    row = db.session.scalar(sa.select(SubscriberField).where(SubscriberField.key == key))
    if row is None:
        raise FieldError({"key": f"there is no field {key!r}"})
    db.session.execute(sa.delete(SubscriberFieldValue).where(SubscriberFieldValue.field_id == row.id))
    db.session.delete(row)
    db.session.flush()


def normalize_phone(raw: str) -> str:
    """A phone number in E.164 (+15551234567); ValueError says what is wrong with it."""
    text = " ".join(str(raw).split())
    try:
        number = phonenumbers.parse(text, current_app.config["PHONE_REGION"])
    except phonenumbers.NumberParseException as exc:
        raise ValueError(_("is not a phone number (write it with its country code, "
                           "like +1 212 555 0100)")) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError(_("is not a valid phone number (check the digits and the country code)"))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def shown_phone(e164: str | None) -> str:
    """A kept number as people write it (national format at home, international abroad)."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return e164
    region = current_app.config["PHONE_REGION"]
    style = (phonenumbers.PhoneNumberFormat.NATIONAL
             if phonenumbers.region_code_for_number(number) == region
             else phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return phonenumbers.format_number(number, style)


def _pieces(raw: object) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, (list, tuple, set)):
        return [str(x) for x in raw]
    return [str(raw)]


def clean_value(fdef: FieldDef, raw: object) -> list[str]:
    """One custom field's value as kept: a list (empty clears it, several only for a
    several-choices field). ValueError says what is wrong, in words for the person."""
    if fdef.kind == "checkbox":
        if isinstance(raw, bool):
            return ["yes"] if raw else []
        word = " ".join(_pieces(raw)).strip().casefold()
        if word in _YES:
            return ["yes"]
        if word in _NO:
            return []
        raise ValueError(_("is a yes or no"))
    if fdef.kind == "choices":
        pieces = [p for raw_piece in _pieces(raw) for p in raw_piece.split(SEPARATOR)]
    else:
        pieces = _pieces(raw)
        if len(pieces) > 1:
            raise ValueError(_("takes one value"))
    values = [" ".join(p.split()) for p in pieces]
    values = [v for v in values if v]
    if not values:
        return []
    for value in values:
        if _CONTROL.search(value) or len(value) > VALUE_MAX:
            raise ValueError(_("is one line of at most %(limit)s characters", limit=VALUE_MAX))
    value = values[0]
    if fdef.kind == "text":
        return [value]
    if fdef.kind == "number":
        try:
            number = Decimal(value.replace(",", "")) if re.fullmatch(r"[-+]?[\d,]*\.?\d+", value) else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise ValueError(_("is a number, like 12 or 3.5"))
        text = format(number.normalize(), "f")
        return [text[:-2] if text.endswith(".0") else text]
    if fdef.kind == "date":
        try:
            return [date.fromisoformat(value).isoformat()]
        except ValueError:
            raise ValueError(_("is a date written year-month-day, like 2026-03-31")) from None
    by_fold = {c.casefold(): c for c in fdef.choices}
    chosen: list[str] = []
    for v in values:
        match = by_fold.get(v.casefold())
        if match is None:
            raise ValueError(_("is one of: %(choices)s", choices=", ".join(fdef.choices)))
        if match not in chosen:
            chosen.append(match)
    if fdef.kind == "choice":
        return chosen
    return [c for c in fdef.choices if c in chosen]  # in the field's own order


def clean_values(raw: Mapping[str, object], defs: Sequence[FieldDef] | None = None, *,
                 require: bool = False) -> dict[str, list[str]]:
    """Custom fields' values by key, checked; FieldError names every field at fault.

    `require`: the required fields must be given (the signup form). Keys that name no
    custom field are refused, never dropped in silence."""
    defs = [f for f in (defs if defs is not None else custom()) if not f.builtin]
    known = {f.key: f for f in defs}
    errors: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for key in raw:
        if key not in known:
            errors[key] = "there is no such field" + (
                f" (the fields are: {', '.join(known)})" if known else " (no custom field is defined)")
    for key, fdef in known.items():
        if key not in raw:
            if require and fdef.required:
                errors[key] = _("%(label)s is required", label=fdef.label)
            continue
        try:
            out[key] = clean_value(fdef, raw[key])
        except ValueError as exc:
            errors[key] = _("%(label)s %(problem)s", label=fdef.label, problem=str(exc))
            continue
        if require and fdef.required and not out[key]:
            errors[key] = _("%(label)s is required", label=fdef.label)
    if errors:
        raise FieldError(errors)
    return out


def set_values(subscriber_id: int, values: Mapping[str, list[str]], *, only_empty: bool = False) -> None:
    """Keep these custom fields' values for one subscriber (an empty list clears one).

    `only_empty`: keep only those the person has none of yet (what a later way in adds never
    overwrites what they gave). The caller commits."""
    if not values:
        return
    ids = {f.key: f.id for f in custom()}
    wanted = {ids[k]: v for k, v in values.items() if ids.get(k) is not None}
    if only_empty and wanted:
        have = set(db.session.scalars(sa.select(SubscriberFieldValue.field_id).where(
            SubscriberFieldValue.subscriber_id == subscriber_id,
            any_of(SubscriberFieldValue.field_id, list(wanted)))))
        wanted = {k: v for k, v in wanted.items() if k not in have and v}
    if not wanted:
        return
    db.session.execute(sa.delete(SubscriberFieldValue).where(
        SubscriberFieldValue.subscriber_id == subscriber_id,
        any_of(SubscriberFieldValue.field_id, list(wanted))))
    rows = [{"subscriber_id": subscriber_id, "field_id": fid, "value": v}
            for fid, vs in wanted.items() for v in vs]
    if rows:
        db.session.execute(sa.insert(SubscriberFieldValue), rows)


def values_for(subscriber_ids: Sequence[int]) -> dict[int, dict[str, list[str]]]:
    """Every custom field's values for these subscribers: {subscriber id: {key: [values]}}."""
    if not subscriber_ids:
        return {}
    out: dict[int, dict[str, list[str]]] = {}
    query = (sa.select(SubscriberFieldValue.subscriber_id, SubscriberField.key, SubscriberFieldValue.value)
             .join(SubscriberField, SubscriberField.id == SubscriberFieldValue.field_id)
             .where(any_of(SubscriberFieldValue.subscriber_id, list(subscriber_ids)))
             .order_by(SubscriberFieldValue.subscriber_id, SubscriberField.id))
    for sub_id, key, value in db.session.execute(query):
        out.setdefault(sub_id, {}).setdefault(key, []).append(value)
    orders = {f.key: {c: i for i, c in enumerate(f.choices)} for f in custom() if f.kind == "choices"}
    for values in out.values():
        for key, order in orders.items():
            if len(values.get(key, ())) > 1:  # in the field's own order, as clean_value keeps them
                values[key].sort(key=functools.partial(_choice_rank, order))
    return out


def _choice_rank(order: dict[str, int], value: str) -> tuple[int, str]:
    return order.get(value, len(order)), value


def shown(fdef: FieldDef, values: Sequence[str]) -> str:
    """A value as one cell of a CSV file or a table: several choices joined by '; '."""
    return f"{SEPARATOR} ".join(values)
