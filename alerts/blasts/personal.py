"""Greeting by name: `{first_name|friend}` in an alert's subject, preheader and intro.

Each distinct token (its field and fallback) becomes one slot of the compiled email, so a
recipient's greeting costs what their unsubscribe link does: a slot filled. A value is the
subscriber's field, on one line and stripped, or the fallback where they have none. Only
`{key}` and `{key|fallback}` with a key like `first_name` are tokens: any other brace is text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..mail.rendering import Slot
from ..models import Subscriber
from ..subscribers import fields

_TOKEN = r"\{(?P<key>[a-z][a-z0-9_]*)(?:\|(?P<fallback>[^{}\r\n]*))?\}"
TOKEN = re.compile(_TOKEN)
# What Markdown reads as a link's address is left as it is: a token there would change where
# the link leads, not what the reader is called.
_LINKISH = (r"\]\([^)\s]*"  # an inline link's address: [text](URL
            r"|<[a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]*>"  # an autolink: <https://...>
            r"|^[ ]{0,3}\[[^\]\r\n]+\]:[ \t]*\S+")  # a link reference: [name]: URL
# In Markdown a backslash keeps a brace as it is: \{first_name} reads "{first_name}".
_MARKDOWN_TOKEN = re.compile(rf"(?P<keep>{_LINKISH})|(?<!\\){_TOKEN}", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
RULE_SLOT = "p_rule"  # the text part's "====" under a subject that has tokens: as long as it is
# The reader the compose page's preview shows by name (the nameless one gets the fallbacks).
SAMPLE = {"first_name": "Ana", "last_name": "García", "postal_code": "10027"}


@dataclass(frozen=True)
class Token:
    key: str
    fallback: str
    slot: str


def _token(key: str, fallback: str | None) -> Token:
    fallback = " ".join((fallback or "").split())
    digest = hashlib.sha1(f"{key}|{fallback}".encode(), usedforsecurity=False).hexdigest()[:8]
    return Token(key, fallback, f"p_{key}_{digest}")  # the same slot in every variant's email


def tokens_in(*texts: str | None, intro: str | None = None) -> tuple[Token, ...]:
    """The distinct tokens of these lines and of an intro (in Markdown, whose link addresses
    hold none), in the order they first appear."""
    found: dict[str, Token] = {}
    matches = [m for text in texts for m in TOKEN.finditer(text or "")]
    matches += [m for m in _MARKDOWN_TOKEN.finditer(intro or "") if m["keep"] is None]
    for m in matches:
        token = _token(m["key"], m["fallback"])
        found.setdefault(token.slot, token)
    return tuple(found.values())


def line_with_slots(text: str) -> str:
    """A subject or preheader with its tokens as slots (slot markers survive HTML escaping)."""
    return TOKEN.sub(lambda m: str(Slot(_token(m["key"], m["fallback"]).slot)), text) if "{" in text else text


def markdown_with_slots(source: str) -> str:
    """The intro's Markdown with its tokens as slots, before it is rendered: a fallback is the
    reader's word, never Markdown; link addresses keep their braces."""
    if "{" not in source:
        return source

    def sub(m: re.Match) -> str:
        return m["keep"] or str(Slot(_token(m["key"], m["fallback"]).slot))

    return _MARKDOWN_TOKEN.sub(sub, source)


def known_keys() -> list[str]:
    """The fields a token may name: the built-in ones and those staff defined."""
    return [f.key for f in fields.definitions()]


def unknown(text: str | None, known: Sequence[str], *, markdown: bool = False) -> str | None:
    """Why the text's tokens cannot be filled in (a token naming no field), or None."""
    found = tokens_in(intro=text) if markdown else tokens_in(text)
    missing = [t.key for t in found if t.key not in known]
    if not missing:
        return None
    names = ", ".join(f"{{{k}}}" for k in dict.fromkeys(missing))
    return (f"{names} names no subscriber field; the fields are: {', '.join(known)} "
            "(write {first_name|friend} for a fallback)")


def clean(value: object) -> str:
    """A field's value as a greeting takes it: one line, stripped, no control characters (a
    subject is a header, and no value may start another)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.isprintable() and value == value.strip() and "  " not in value:
        return value  # most names: one line already (isprintable is false for any control or break)
    if isinstance(value, (list, tuple)):
        value = f"{fields.SEPARATOR} ".join(str(v) for v in value)
    return " ".join(_CONTROL.sub(" ", str(value)).split())


def values(tokens: Iterable[Token], person: Mapping[str, object] | None) -> dict[str, str]:
    """Each token's slot value for one reader: their field, or the fallback."""
    person = person or {}
    return {t.slot: clean(person.get(t.key)) or t.fallback for t in tokens}


def rule(subject: str) -> str:
    """The text part's line under its heading, as long as this reader's subject."""
    return "=" * len(subject)


BUILTIN_COLUMNS = {"first_name": Subscriber.first_name, "last_name": Subscriber.last_name,
                   "postal_code": Subscriber.postal_code, "phone": Subscriber.phone}


def people(tokens: Sequence[Token], rows: Sequence[object]) -> dict[int, dict[str, object]]:
    """The fields the tokens name, for a batch's subscribers: the built-in ones from the rows
    (the batch's query loads them when the alert has tokens, `columns`), custom ones in one query."""
    keys = {t.key for t in tokens}
    out: dict[int, dict[str, object]] = {}
    builtin = [k for k in keys if k in BUILTIN_COLUMNS]
    for r in rows:
        sub_id = getattr(r, "subscriber_id", None)
        if sub_id:
            out[sub_id] = {k: getattr(r, k, None) for k in builtin}
    subs = list(out)
    if keys - set(BUILTIN_COLUMNS) and subs:
        for sub_id, custom in fields.values_for(subs).items():
            out.setdefault(sub_id, {}).update({k: v for k, v in custom.items() if k in keys})
    return out


def columns(tokens: Sequence[Token]) -> list[sa.orm.InstrumentedAttribute]:
    """The subscriber columns a batch's query adds for these tokens (none without tokens)."""
    keys = {t.key for t in tokens}
    return [col for key, col in BUILTIN_COLUMNS.items() if key in keys]
