"""Audience rules: parsed from staff input, turned into WHERE clauses, counted, said in words.

Rules are a small JSON object stored on the alert (`Alert.audience`); every key is optional
and they combine with AND. The default (no key) is everyone confirmed, minus those who already
signed every action the alert links to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from .. import i18n
from ..extensions import Column, db
from ..models import (
    Action,
    Alert,
    CallLog,
    Click,
    Delivery,
    DeliveryStatus,
    Signature,
    Subscriber,
    SubscriberField,
    SubscriberFieldValue,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
    utcnow,
)
from ..subscribers import fields
from ..subscribers.preferences import TOPIC_LABELS, PreferenceError, clean_topics

MAX_DAYS = 3650
MAX_PREFIXES = 20
PREFIX_MAX = 20
_POSTAL_PREFIX = re.compile(r"^[A-Z0-9 \-]+$")
# The custom fields an audience can pick by value: the others (text, number, date) are free text.
FIELD_KINDS = ("choice", "choices", "checkbox")


class AudienceError(ValueError):
    """A rule that cannot be used; the message names it."""


@dataclass
class Rules:
    only_signers_of: list[str] = field(default_factory=list)  # signed any of these
    except_signers_of: list[str] = field(default_factory=list)  # signed none of these
    joined_after: str | None = None  # ISO date, inclusive
    joined_before: str | None = None  # ISO date, exclusive
    # Signup source, exact (case-insensitive), or a `?source=` code they signed something with.
    source: str | None = None
    engaged_days: int | None = None  # clicked or signed within this many days…
    engaged: bool = True  # …or, when False, did neither
    topics: list[str] = field(default_factory=list)  # chose one of these, or chose none
    include_acted: bool = False  # also those who signed every action the alert links to
    received_alert: int | None = None  # reminders: those sent this alert
    except_clickers_of: int | None = None  # reminders: minus those who clicked in it
    postal_prefixes: list[str] = field(default_factory=list)  # postal code starts with one of these
    has_first_name: bool | None = None  # True: a first name is known; False: none is
    # Custom fields by key: has one of these values ("yes" for a ticked checkbox); fields AND.
    field_values: dict[str, list[str]] = field(default_factory=dict)
    # Reads one of these languages (a subscriber without one, or with one not offered, reads
    # the default).
    languages: list[str] = field(default_factory=list)
    only_writers: bool = False  # signed a letter (any action that is a letter)
    only_callers: bool = False  # told us they made a call (a call log with their signature)

    def to_json(self) -> dict:
        """Only what differs from the default, so stored rules stay readable."""
        default = asdict(Rules())
        return {k: v for k, v in asdict(self).items() if v != default[k]}


def _date(value: object, name: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value).strip()).isoformat()
    except ValueError as exc:
        raise AudienceError(f"{name} must be a date like 2026-01-31, not {value!r}") from exc


def _slugs(values: Iterable[str | None] | None, name: str) -> list[str]:
    slugs = list(dict.fromkeys(s.strip() for s in (values or []) if s and s.strip()))
    if slugs:
        found = set(db.session.scalars(sa.select(Action.slug).where(Action.slug.in_(slugs))))
        missing = [s for s in slugs if s not in found]
        if missing:
            raise AudienceError(f"{name}: no action with slug {', '.join(missing)}")
    return slugs


def _int(value: object, name: str, low: int, high: int) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(str(value).strip())
    except ValueError as exc:
        raise AudienceError(f"{name} must be a whole number, not {value!r}") from exc
    if not low <= number <= high:
        raise AudienceError(f"{name} must be between {low} and {high}")
    return number


def _bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _prefixes(value: object) -> list[str]:
    """Postal code prefixes: a list, or one string with commas between them."""
    if isinstance(value, str):
        pieces = value.split(",")
    elif isinstance(value, (list, tuple)):
        pieces = [str(v) for v in value]
    elif value is None:
        pieces = []
    else:
        raise AudienceError("postal code starts with: give the prefixes separated by commas")
    out = list(dict.fromkeys(" ".join(p.split()).upper() for p in pieces if p and p.strip()))
    for prefix in out:
        if len(prefix) > PREFIX_MAX or not _POSTAL_PREFIX.match(prefix):
            raise AudienceError(f"postal code starts with: {prefix!r} is not the start of a postal code "
                                "(letters, digits, spaces and hyphens)")
    if len(out) > MAX_PREFIXES:
        raise AudienceError(f"postal code starts with: at most {MAX_PREFIXES} prefixes")
    return out


def _has(value: object) -> bool | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip().lower() in ("no", "false", "0", "off", "without"):
        return False
    return _bool(value)


def _field_values(raw: object) -> dict[str, list[str]]:
    """{field key: [values]} checked against the fields as defined now (values as the field spells them)."""
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise AudienceError("field values must be a mapping of field keys to values")
    defs = {f.key: f for f in fields.custom()}
    out: dict[str, list[str]] = {}
    for key, given in raw.items():
        wanted = [given] if isinstance(given, str) else list(given or [])
        wanted = [str(w).strip() for w in wanted if str(w).strip()]
        if not wanted:
            continue
        fdef = defs.get(str(key))
        if fdef is None:
            raise AudienceError(f"there is no field {key!r} (was it removed?)")
        if fdef.kind not in FIELD_KINDS:
            raise AudienceError(f"{fdef.label} is a {fdef.kind_name.lower()} field: audiences pick "
                                "choice, several-choices and checkbox fields")
        if fdef.kind == "checkbox":
            if any(w.casefold() not in ("yes", "y", "true", "1", "on") for w in wanted):
                raise AudienceError(f"{fdef.label} is a checkbox: it can only be ticked")
            out[fdef.key] = ["yes"]
            continue
        by_fold = {c.casefold(): c for c in fdef.choices}
        unknown = [w for w in wanted if w.casefold() not in by_fold]
        if unknown:
            raise AudienceError(f"{fdef.label} has no choice {', '.join(unknown)} "
                                f"(its choices: {', '.join(fdef.choices)})")
        chosen = {by_fold[w.casefold()] for w in wanted}
        out[fdef.key] = [c for c in fdef.choices if c in chosen]
    return out


def _languages(raw: object) -> list[str]:
    if not raw:
        return []
    given = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, (list, tuple)) else None
    if given is None:
        raise AudienceError("languages: give a list of language codes")
    offered = i18n.languages()
    out = []
    for value in given:
        code = i18n.known(str(value))
        if code is None:
            raise AudienceError(f"languages: {value!r} is not one of {', '.join(offered)}")
        out.append(code)
    chosen = set(out)
    return [c for c in offered if c in chosen]


def reads(code: str) -> sa.ColumnElement[bool]:
    """The subscriber reads `code`, as `i18n.language_of` reads their stored language."""
    stored = sa.func.lower(sa.func.coalesce(Subscriber.language, ""))
    if code != i18n.default_language():
        return sa.or_(stored == code, stored.startswith(f"{code}-"), stored.startswith(f"{code}_"))
    return ~sa.or_(*(reads(other) for other in i18n.other_languages())) if i18n.other_languages() \
        else sa.true()


def parse(raw: dict | None) -> Rules:
    """Staff input (form or CLI or stored JSON) -> checked Rules, or AudienceError naming the rule."""
    raw = dict(raw or {})
    unknown = set(raw) - set(asdict(Rules()))
    if unknown:
        raise AudienceError(f"unknown audience rule {', '.join(sorted(unknown))}")
    try:
        topics = clean_topics(raw.get("topics"))
    except PreferenceError as exc:
        raise AudienceError(str(exc)) from exc
    rules = Rules(
        only_signers_of=_slugs(raw.get("only_signers_of"), "only signers of"),
        except_signers_of=_slugs(raw.get("except_signers_of"), "except signers of"),
        joined_after=_date(raw.get("joined_after"), "joined after"),
        joined_before=_date(raw.get("joined_before"), "joined before"),
        source=" ".join(str(raw.get("source") or "").split()) or None,
        engaged_days=_int(raw.get("engaged_days"), "engaged within days", 1, MAX_DAYS),
        engaged=_bool(raw.get("engaged", True)),
        topics=topics,
        include_acted=_bool(raw.get("include_acted", False)),
        received_alert=_int(raw.get("received_alert"), "received alert", 1, 2**31 - 1),
        except_clickers_of=_int(raw.get("except_clickers_of"), "except clickers of", 1, 2**31 - 1),
        postal_prefixes=_prefixes(raw.get("postal_prefixes")),
        has_first_name=_has(raw.get("has_first_name")),
        field_values=_field_values(raw.get("field_values")),
        languages=_languages(raw.get("languages")),
        only_writers=_bool(raw.get("only_writers", False)),
        only_callers=_bool(raw.get("only_callers", False)),
    )
    both = set(rules.only_signers_of) & set(rules.except_signers_of)
    if both:
        raise AudienceError(f"{', '.join(sorted(both))} is both in “only signers of” and “except signers "
                            "of”: nobody could match")
    if rules.joined_after and rules.joined_before and rules.joined_after >= rules.joined_before:
        raise AudienceError("joined after must be earlier than joined before")
    for alert_id in (rules.received_alert, rules.except_clickers_of):
        if alert_id is not None and db.session.get(Alert, alert_id) is None:
            raise AudienceError(f"there is no alert {alert_id}")
    return rules


def _action_ids(slugs: list[str]) -> list[int]:
    return list(db.session.scalars(sa.select(Action.id).where(Action.slug.in_(slugs)))) if slugs else []


def _signed_where(*conditions: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    """A signature matching the subscriber (as a subscriber, or by the same case-folded email_key) and these.

    Uncorrelated IN subqueries, each computed once per statement (a hashed subplan on
    PostgreSQL, an ephemeral index on SQLite), rather than a lookup per subscriber; the
    NULL subscriber ids are filtered out so that NOT IN means what it says.
    """
    by_id = sa.select(Signature.subscriber_id).where(Signature.subscriber_id.is_not(None), *conditions)
    by_address = sa.select(Signature.email_key).where(*conditions)
    return sa.or_(Subscriber.id.in_(by_id), Subscriber.email_key.in_(by_address))


def signed(action_ids: list[int]) -> sa.ColumnElement[bool]:
    """The subscriber signed one of these actions."""
    return _signed_where(Signature.action_id.in_(action_ids))


def _ids(column: Column, *conditions: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    """Subscriber.id IN (the non-null ids in `column` where `conditions`), computed once."""
    return Subscriber.id.in_(sa.select(column).where(column.is_not(None), *conditions))


def _midnight(iso: str) -> datetime:
    return datetime.combine(date.fromisoformat(iso), datetime.min.time(), tzinfo=UTC)


def _field_is(field_id: int, values: list[str]) -> sa.ColumnElement[bool]:
    """The subscriber has one of these values of this custom field: a semi-join read through
    the (field_id, value) index once per statement (SQLite would probe a correlated EXISTS
    once per subscriber, by the primary key, instead)."""
    return _ids(SubscriberFieldValue.subscriber_id, SubscriberFieldValue.field_id == field_id,
                SubscriberFieldValue.value.in_(values))


def _field_ids(keys: Iterable[str]) -> dict[str, int]:
    keys = list(keys)
    rows = db.session.execute(sa.select(SubscriberField.key, SubscriberField.id)
                              .where(SubscriberField.key.in_(keys)))
    return {key: field_id for key, field_id in rows}


def base_conditions() -> list:
    """Everyone confirmed, not suppressed and not pausing: who any alert can go to."""
    now = utcnow()
    return [
        Subscriber.status == SubscriberStatus.CONFIRMED,
        ~sa.exists().where(Suppression.email == Subscriber.email),
        sa.or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= now),
    ]


def conditions(rules: Rules, linked_action_ids: list[int]) -> list:
    """The WHERE clauses (on Subscriber) for these rules and the actions the alert links to."""
    out = base_conditions()
    joined = sa.func.coalesce(Subscriber.confirmed_at, Subscriber.created_at)
    if rules.only_signers_of:
        out.append(signed(_action_ids(rules.only_signers_of)))
    if rules.except_signers_of:
        out.append(~signed(_action_ids(rules.except_signers_of)))
    if rules.only_writers:
        out.append(_signed_where(Signature.action_id.in_(
            sa.select(Action.id).where(Action.kind == "letter"))))
    if rules.only_callers:
        out.append(_signed_where(Signature.id.in_(
            sa.select(CallLog.signature_id).where(CallLog.signature_id.is_not(None)))))
    if rules.joined_after:
        out.append(joined >= _midnight(rules.joined_after))
    if rules.joined_before:
        out.append(joined < _midnight(rules.joined_before))
    if rules.source:
        wanted = rules.source.lower()
        out.append(sa.or_(sa.func.lower(Subscriber.source) == wanted,
                          _signed_where(sa.func.lower(Signature.source_code) == wanted)))
    if rules.engaged_days:
        since = utcnow() - timedelta(days=rules.engaged_days)
        active = sa.or_(
            _ids(Click.subscriber_id, Click.machine.is_(False), Click.at >= since),
            _signed_where(Signature.created_at >= since),
        )
        out.append(active if rules.engaged else ~active)
    if rules.topics:
        out.append(sa.or_(
            _ids(SubscriberTopic.subscriber_id, SubscriberTopic.topic.in_(rules.topics)),
            ~_ids(SubscriberTopic.subscriber_id),
        ))
    if rules.received_alert is not None:
        out.append(_ids(Delivery.subscriber_id, Delivery.alert_id == rules.received_alert,
                        Delivery.status == DeliveryStatus.SENT))
    if rules.except_clickers_of is not None:
        out.append(~_ids(Click.subscriber_id, Click.alert_id == rules.except_clickers_of,
                         Click.machine.is_(False)))
    if rules.postal_prefixes:
        postal = sa.func.upper(Subscriber.postal_code)
        out.append(sa.or_(*(postal.startswith(p, autoescape=True) for p in rules.postal_prefixes)))
    if rules.has_first_name is not None:
        known = sa.func.coalesce(Subscriber.first_name, "") != ""
        out.append(known if rules.has_first_name else ~known)
    if rules.field_values:
        ids = _field_ids(rules.field_values)
        for key, values in rules.field_values.items():
            # A field removed since the rules were checked matches nobody (never everybody).
            out.append(_field_is(ids[key], values) if key in ids else sa.false())
    if rules.languages and set(rules.languages) != set(i18n.languages()):
        out.append(sa.or_(*(reads(code) for code in rules.languages)))
    if linked_action_ids and not rules.include_acted:
        # Those who signed every action the alert links to have nothing left to do.
        out.append(~sa.and_(*(signed([a]) for a in linked_action_ids)))
    return out


def linked_action_ids(alert: Alert | None) -> list[int]:
    """The open actions the alert links to (closed ones are not in the email)."""
    return [a.id for a in alert.actions if a.is_open] if alert is not None else []


def size(rules: Rules, linked: list[int]) -> int:
    return db.session.execute(
        sa.select(sa.func.count()).select_from(Subscriber).where(*conditions(rules, linked))
    ).scalar_one()


def _titles(slugs: list[str]) -> str:
    titles = {a.slug: a.title for a in db.session.scalars(sa.select(Action).where(Action.slug.in_(slugs)))}
    names = [titles.get(s, s) for s in slugs]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _either(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def _except(clauses: list[str]) -> str:
    """Every exclusion in one clause: "except those who signed X, who clicked in alert 3 or who…"."""
    joined = clauses[0] if len(clauses) == 1 else ", who ".join(clauses[:-1]) + " or who " + clauses[-1]
    return f"except those who {joined}"


def describe(rules: Rules, linked: list[int] | None = None) -> str:
    """The rules in words, as the send confirmation repeats them; the exclusions in one clause."""
    if rules.received_alert is not None:
        parts = [f"those sent alert {rules.received_alert}"]
    else:
        parts = ["everyone confirmed"]
    if rules.only_signers_of:
        parts.append(f"only those who signed {_titles(rules.only_signers_of)}")
    if rules.only_writers:
        parts.append("only those who wrote a letter")
    if rules.only_callers:
        parts.append("only those who made a call")
    excluded = []
    if rules.except_signers_of:
        excluded.append(f"signed {_titles(rules.except_signers_of)}")
    if rules.except_clickers_of is not None:
        excluded.append(f"clicked in alert {rules.except_clickers_of}")
    if rules.joined_after:
        parts.append(f"who joined on or after {rules.joined_after}")
    if rules.joined_before:
        parts.append(f"who joined before {rules.joined_before}")
    if rules.source:
        parts.append(f"who signed up or signed through “{rules.source}”")
    if rules.engaged_days:
        verb = "who clicked or signed" if rules.engaged else "who neither clicked nor signed"
        parts.append(f"{verb} in the last {rules.engaged_days} days")
    if rules.topics:
        labels = [TOPIC_LABELS[t] for t in rules.topics]
        parts.append(f"who chose {' or '.join(labels)} (or chose no topics)")
    if rules.postal_prefixes:
        parts.append(f"whose postal code starts with {_either(rules.postal_prefixes)}")
    if rules.has_first_name is not None:
        parts.append("whose first name is known" if rules.has_first_name else "whose first name is not known")
    if rules.field_values:
        defs = fields.by_key()
        for key, values in rules.field_values.items():
            fdef = defs.get(key)
            label = fdef.label if fdef is not None else key
            if fdef is not None and fdef.kind == "checkbox":
                parts.append(f"who ticked “{label}”")
            else:
                parts.append(f"whose “{label}” is {_either(values)}")
    if rules.languages:
        names = [i18n.STAFF_NAMES.get(c, c) for c in rules.languages]
        parts.append(f"who read {_either(names)}")
    if linked and not rules.include_acted:
        excluded.append("already signed all this alert's actions")
    if excluded:
        parts.append(_except(excluded))
    return ", ".join(parts)


def reminder_rules(alert: Alert, *, minus_clickers: bool) -> Rules:
    """A reminder goes to the same recipients minus those who signed (and, if chosen, who clicked)."""
    rules = parse(alert.audience)
    rules.received_alert = alert.id
    rules.except_signers_of = list(dict.fromkeys(
        [*rules.except_signers_of, *(a.slug for a in alert.actions)]))
    rules.only_signers_of = [s for s in rules.only_signers_of if s not in rules.except_signers_of]
    rules.except_clickers_of = alert.id if minus_clickers else None
    return rules


def sentence(size: int, description: str) -> str:
    """“Send to 12,408 people: everyone confirmed, except those who signed Close Rikers”."""
    return f"Send to {size:,} {'person' if size == 1 else 'people'}: {description}"
