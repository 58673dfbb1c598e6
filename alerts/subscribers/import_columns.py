"""Which column of an import's header row holds each field: a --map mapping, else a recognised
name; and the columns no field takes, which the import names (never drops in silence)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .fields import FieldDef
from .import_report import ImportFileError

# The built-in columns an import understands; `email` is required, the rest are optional.
PROFILE = ("first_name", "last_name", "postal_code", "language", "phone")
FIELDS = ("email", "source", *PROFILE)
LABELS = {"email": "Email", "source": "Source", "first_name": "First name", "last_name": "Last name",
          "postal_code": "Postal code", "language": "Language", "phone": "Phone"}
# Header names recognised without a mapping, compared with case and punctuation removed
# ("E-mail Address" -> "emailaddress", "First Name" -> "firstname").
HEADER_ALIASES = {
    "email": {"email", "emailaddress", "emails", "mailaddress"},
    "source": {"source", "consentsource"},
    "first_name": {"firstname", "givenname"},
    "last_name": {"lastname", "surname", "familyname"},
    "postal_code": {"postalcode", "zip", "zipcode", "postcode", "postal"},
    "language": {"language", "lang"},
    "phone": {"phone", "phonenumber", "telephone", "mobile"},
}


@dataclass
class Columns:
    """The header row read: each field's column, and the columns left over."""

    at: dict[str, int]  # field key -> column index
    custom: dict[str, FieldDef] = field(default_factory=dict)  # the custom fields among `at`
    unmapped: list[tuple[int, str]] = field(default_factory=list)  # (index, header) no field takes

    def __getitem__(self, name: str) -> int:
        return self.at[name]


def _key(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def parse_mapping(items: Iterable[str], custom: Sequence[FieldDef] = ()) -> dict[str, str]:
    """`email=E-mail Address` pairs (from --map) into {"email": "E-mail Address"}; FIELD is a
    built-in column or a custom field's key."""
    known = [*FIELDS, *(f.key for f in custom)]
    mapping: dict[str, str] = {}
    for item in items:
        name, sep, header = item.partition("=")
        name = name.strip().lower()
        if not sep or not header.strip():
            raise ImportFileError(f"a mapping is FIELD=HEADER, like email=E-mail Address; got {item!r}")
        if name not in known:
            raise ImportFileError(f"unknown field {name!r} in a mapping; the fields are {', '.join(known)}")
        mapping[name] = header.strip()
    return mapping


def resolve_columns(header: list[str], mapping: dict[str, str] | None = None,
                    custom: Sequence[FieldDef] = ()) -> Columns:
    """Which column holds each field: the mapping's header, else a recognised name (a custom
    field's key or label); each column goes to one field at most."""
    mapping = mapping or {}
    cleaned = [h.strip() for h in header]
    by_key = {f.key: f for f in custom}
    at: dict[str, int] = {}
    for name, wanted in mapping.items():
        matches = [i for i, h in enumerate(cleaned) if h.lower() == wanted.lower()]
        if not matches:
            raise ImportFileError(
                f"the mapping names a column {wanted!r} for {name}, but the header row "
                f"has no such column (it has: {_listing(cleaned)})"
            )
        if matches[0] in at.values():
            raise ImportFileError(f"the mapping gives the column {wanted!r} to two fields")
        at[name] = matches[0]
    aliases = {**HEADER_ALIASES, **{f.key: {_key(f.key), _key(f.label)} for f in custom}}
    for name, names in aliases.items():
        if name in at:
            continue
        for i, h in enumerate(cleaned):
            if i not in at.values() and h and _key(h) in names:
                at[name] = i
                break
    if "email" not in at:
        raise ImportFileError(
            "the header row names no email column (it has: "
            f"{_listing(cleaned)}); name one 'email', or say which it is: --map \"email=YOUR HEADER\" "
            "on the command line, the Email column box on the staff page"
        )
    taken = set(at.values())
    return Columns(at=at, custom={k: by_key[k] for k in at if k in by_key},
                   unmapped=[(i, h) for i, h in enumerate(cleaned) if i not in taken])


def _listing(headers: list[str]) -> str:
    shown = ", ".join(repr(h) for h in headers[:12] if h) or "nothing"
    return shown + (", …" if len(headers) > 12 else "")
