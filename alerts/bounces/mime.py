"""Reading a message's MIME structure without trusting it: bounded parts and depth, any bytes.

A bounce comes from anywhere: its charset may be a lie or no charset at all, its headers raw
8-bit, its parts nested past the stdlib's recursion. What is read here is always text.
"""

from __future__ import annotations

import codecs
import email
import email.header
import email.message
import email.policy
import re
from collections.abc import Iterator
from email.parser import BytesParser

MAX_PARTS = 200  # MIME parts built; a message with more is read as its headers and text only
MAX_DEPTH = 20  # nesting levels looked into
CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # all but tab: unfolds, and no NUL for Postgres
_RAW_BYTE_RE = re.compile("[\udc80-\udcff]")  # a byte the parser could not read as ASCII
_NOT_CHARSETS = {"punycode", "idna", "unicode-escape", "raw-unicode-escape"}  # quadratic, or no charset


class _Policy(email.policy.Compat32):
    """compat32, but a header is always a str: raw 8-bit bytes are read as UTF-8, else Latin-1."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        if name.lower() == "content-type":  # as it came: its boundary must match the body's lines
            return value
        return header_text(value)


HEADER_POLICY = POLICY = _Policy()  # also the poller's, for its first look at headers


class _TooManyParts(Exception):
    pass


def decode(data: bytes, charset: str | None = None) -> str:
    """Bytes as text whatever they claim to be: the charset, else UTF-8, else Latin-1."""
    for codec in (charset, "utf-8"):
        if not codec:
            continue
        try:
            if codecs.lookup(codec).name in _NOT_CHARSETS:
                continue
            return data.decode(codec)
        except Exception:  # unknown-8bit, a codec that is no charset, bytes it cannot read
            continue
    return data.decode("latin-1", "replace")


def header_text(value: str | email.header.Header) -> str:
    """A header value as one line of text, from a str with raw 8-bit bytes in it or a Header."""
    if isinstance(value, email.header.Header):  # a message parsed with plain compat32
        value = str(value)
    elif not isinstance(value, str):
        value = "" if value is None else str(value)
    if _RAW_BYTE_RE.search(value):
        value = decode(value.encode("utf-8", "surrogateescape"))
    return CONTROL_RE.sub("", value)


def header(msg: email.message.Message, name: str) -> str:
    return header_text(msg.get(name, ""))


def parse(data: bytes) -> email.message.Message:
    """The message's MIME structure, or only its headers if it has too many parts to build."""
    made = 0

    def factory(policy: email.policy.Policy = POLICY) -> email.message.Message:
        nonlocal made
        made += 1
        if made > MAX_PARTS + 1:  # + the one the parser makes to try the factory
            raise _TooManyParts
        return email.message.Message(policy)

    try:
        return BytesParser(factory, policy=POLICY).parsebytes(data)
    except Exception:  # too many parts, too deep for the stdlib's recursion, a parser bug
        return BytesParser(policy=POLICY).parsebytes(data, headersonly=True)


def walk(msg: email.message.Message) -> Iterator[email.message.Message]:
    """The parts in msg.walk()'s order, but not below MAX_DEPTH (msg.walk() recurses)."""
    stack = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        yield part
        if depth < MAX_DEPTH and part.is_multipart():
            subparts = [p for p in part.get_payload() if isinstance(p, email.message.Message)]
            stack.extend((p, depth + 1) for p in reversed(subparts))


def payload_text(part: email.message.Message) -> str:
    """A leaf's content; not get_payload(), which raises on an 8-bit byte in the charset's name."""
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    return decode(data, part.get_content_charset())
