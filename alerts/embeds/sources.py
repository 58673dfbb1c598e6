"""Source codes (`?source=CODE`): which link, page or partner a signup or signature came through."""

from __future__ import annotations

import re

SOURCE_CODE_MAX = 64
_CODE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def clean_source(value: str | None) -> str | None:
    """The code when it is one (letters, digits, `-_.`, at most 64), else None: a bad code is ignored."""
    if not value:
        return None
    value = value.strip()
    return value if _CODE.fullmatch(value) else None
