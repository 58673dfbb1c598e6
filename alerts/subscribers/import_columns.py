"""Which column of an import's header row holds each field: a --map mapping, else a recognised name."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .import_report import ImportFileError

# The columns an import understands; `email` is required, the rest are optional.
FIELDS = ("email", "source")
# Header names recognised without a mapping, compared with case and punctuation removed
# ("E-mail Address" -> "emailaddress").
HEADER_ALIASES = {
    "email": {"email", "emailaddress", "emails", "mailaddress"},
    "source": {"source", "consentsource"},
}


def _key(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """`email=E-mail Address` pairs (from --map) into {"email": "E-mail Address"}."""
    mapping: dict[str, str] = {}
    for item in items:
        name, sep, header = item.partition("=")
        name = name.strip().lower()
        if not sep or not header.strip():
            raise ImportFileError(f"a mapping is FIELD=HEADER, like email=E-mail Address; got {item!r}")
        if name not in FIELDS:
            raise ImportFileError(f"unknown field {name!r} in a mapping; the fields are {', '.join(FIELDS)}")
        mapping[name] = header.strip()
    return mapping


def resolve_columns(header: list[str], mapping: dict[str, str] | None = None) -> dict[str, int]:
    """Which column holds each field: the mapping's header, else a recognised name."""
    mapping = mapping or {}
    cleaned = [h.strip() for h in header]
    columns: dict[str, int] = {}
    for name in FIELDS:
        if name in mapping:
            wanted = mapping[name].lower()
            matches = [i for i, h in enumerate(cleaned) if h.lower() == wanted]
            if not matches:
                raise ImportFileError(
                    f"the mapping names a column {mapping[name]!r} for {name}, but the header row "
                    f"has no such column (it has: {_listing(cleaned)})"
                )
            columns[name] = matches[0]
            continue
        for i, h in enumerate(cleaned):
            if _key(h) in HEADER_ALIASES[name]:
                columns[name] = i
                break
    if "email" not in columns:
        raise ImportFileError(
            "the header row names no email column (it has: "
            f"{_listing(cleaned)}); name one 'email', or say which it is: --map \"email=YOUR HEADER\" "
            "on the command line, the Email column box on the staff page"
        )
    return columns


def _listing(headers: list[str]) -> str:
    shown = ", ".join(repr(h) for h in headers[:12] if h) or "nothing"
    return shown + (", …" if len(headers) > 12 else "")
