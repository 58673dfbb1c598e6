"""A letter's or call's targets: the decision-makers, as staff write them and as pages show them.

One line per target, the way the CLI's `--target` and the staff form take them:
`Name, Title <email>` for a letter, `Name, Title tel:+15551234567` for a call; a line that
ends in `[placeholder]` marks one staff must replace (nothing is sent to it, and staff pages
say so). The same shape comes from a CSV file with the columns name, title, email, phone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO

import sqlalchemy as sa

from .. import csvin
from ..extensions import db
from ..models import Action, ActionTarget
from ..subscribers.fields import normalize_phone, shown_phone
from ..subscribers.subscriptions import InvalidEmail, normalize_email

MAX_TARGETS = 200
PLACEHOLDER_MARK = "[placeholder]"
_EMAIL = re.compile(r"<([^<>]*)>\s*$")
_PHONE = re.compile(r"\btel:\s*([+\d][\d\s().\-]*)\s*$", re.IGNORECASE)


class TargetError(ValueError):
    """A target line or file that cannot be read; the message names the line and the problem."""


@dataclass(frozen=True)
class Target:
    """One target as written, cleaned: an email for a letter, a phone (E.164) for a call."""

    name: str
    title: str = ""
    email: str | None = None
    phone: str | None = None
    placeholder: bool = False


def _clean_email(raw: str, where: str) -> str:
    try:
        return normalize_email(raw)
    except InvalidEmail as exc:
        raise TargetError(f"{where}: “{raw}” is not an email address ({exc}).") from None


def _clean_phone(raw: str, where: str) -> str:
    try:
        return normalize_phone(raw)
    except ValueError as exc:
        raise TargetError(f"{where}: “{raw}” {exc}.") from None


def _name_title(text: str, where: str) -> tuple[str, str]:
    name, _, title = text.partition(",")
    name, title = " ".join(name.split()), " ".join(title.split())
    if not name:
        raise TargetError(f"{where}: a target needs a name before its address or number.")
    if len(name) > 200 or len(title) > 200:
        raise TargetError(f"{where}: a name or title is longer than 200 characters.")
    return name, title


def parse(line: str, kind: str, where: str = "target") -> Target:
    """One `Name, Title <email>` (letter) or `Name, Title tel:+1…` (call) line."""
    text = " ".join(line.split())
    placeholder = text.lower().endswith(PLACEHOLDER_MARK)
    if placeholder:
        text = text[: -len(PLACEHOLDER_MARK)].rstrip()
    if kind == "letter":
        found = _EMAIL.search(text)
        if found is None:
            raise TargetError(f"{where}: a letter's target is written “Name, Title <email>”.")
        email = _clean_email(found.group(1), where)
        name, title = _name_title(text[: found.start()], where)
        return Target(name, title, email=email, placeholder=placeholder)
    if kind == "call":
        found = _PHONE.search(text)
        if found is None:
            raise TargetError(f"{where}: a call's target is written “Name, Title tel:+15551234567”.")
        phone = _clean_phone(found.group(1), where)
        name, title = _name_title(text[: found.start()], where)
        return Target(name, title, phone=phone, placeholder=placeholder)
    raise TargetError(f"{where}: a {kind} has no targets (only letters and calls do).")


def parse_lines(text: str, kind: str) -> list[Target]:
    """Targets one per line (blank lines skipped); TargetError names the first bad line."""
    found = [parse(line, kind, f"line {n}") for n, line in enumerate(text.splitlines(), start=1)
             if line.strip()]
    check_count(found)
    return found


def check_count(found: list[Target]) -> None:
    if len(found) > MAX_TARGETS:
        raise TargetError(f"an action takes at most {MAX_TARGETS} targets ({len(found)} given).")
    seen: set[str] = set()
    for target in found:
        key = (target.email or target.phone or "").lower()
        if key in seen:
            raise TargetError(f"“{target.email or target.phone}” is given twice.")
        seen.add(key)


def read_csv(file: BinaryIO, kind: str) -> list[Target]:
    """Targets from a CSV file with a header row: name, title, and email (letter) or phone
    (call), and optionally placeholder (yes/no)."""
    try:
        table = csvin.open_table(file)
        records = list(table.records())
    except csvin.CsvFileError as exc:
        raise TargetError(str(exc)) from None
    header = [h.strip().lower() for h in table.header]
    column = "email" if kind == "letter" else "phone"
    if "name" not in header or column not in header:
        raise TargetError(f"the file needs a header row with the columns name and {column} "
                          f"(and optionally title, placeholder).")
    found = []
    for record in records:
        cells = dict(zip(header, record.cells, strict=False))
        where = f"line {record.line}"
        if not any(c.strip() for c in record.cells):
            continue
        address = (cells.get(column) or "").strip()
        if not address:
            raise TargetError(f"{where}: no {column}.")
        name, title = _name_title(f"{cells.get('name', '')},{cells.get('title', '')}", where)
        placeholder = (cells.get("placeholder") or "").strip().lower() in ("1", "y", "yes", "true")
        if kind == "letter":
            found.append(Target(name, title, email=_clean_email(address, where), placeholder=placeholder))
        else:
            found.append(Target(name, title, phone=_clean_phone(address, where), placeholder=placeholder))
    check_count(found)
    return found


def targets_of(action_id: int) -> list[ActionTarget]:
    return list(db.session.scalars(sa.select(ActionTarget).where(ActionTarget.action_id == action_id)
                                   .order_by(ActionTarget.position, ActionTarget.id)))


def real_targets(action_id: int) -> list[ActionTarget]:
    """The targets something is sent to: all but placeholders."""
    return [t for t in targets_of(action_id) if not t.placeholder]


def set_targets(action: Action, wanted: list[Target]) -> bool:
    """Make the action's targets these, keeping the rows (and their deliveries and call logs)
    of those whose address or number stays; whether anything changed. The caller commits."""
    current = targets_of(action.id)
    by_key = {(t.email or t.phone or "").lower(): t for t in current}
    changed = False
    kept: set[int] = set()
    for position, want in enumerate(wanted, start=1):
        key = (want.email or want.phone or "").lower()
        row = by_key.get(key)
        if row is None:
            row = ActionTarget(action_id=action.id)
            db.session.add(row)
            changed = True
        values = {"position": position * 10, "name": want.name, "title": want.title,
                  "email": want.email, "phone": want.phone, "placeholder": want.placeholder}
        for attr, value in values.items():
            if getattr(row, attr) != value:
                setattr(row, attr, value)
                changed = True
        if row.id is not None:
            kept.add(row.id)
    for row in current:
        if row.id not in kept:
            db.session.delete(row)
            changed = True
    db.session.flush()
    return changed


def line_of(target: ActionTarget | Target) -> str:
    """A target as the staff form and the CLI write it (parse's inverse)."""
    head = f"{target.name}, {target.title}" if target.title else target.name
    tail = f"<{target.email}>" if target.email else f"tel:{target.phone}"
    mark = f" {PLACEHOLDER_MARK}" if target.placeholder else ""
    return f"{head} {tail}{mark}"


def phone_shown(target: ActionTarget) -> str:
    """The number as people in this country write it."""
    return shown_phone(target.phone)


def described(target: ActionTarget) -> str:
    """`Name, Title` for pages and the thank-you line."""
    return f"{target.name}, {target.title}" if target.title else target.name
