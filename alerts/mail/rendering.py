"""Email rendering: one template pair per email, CSS inlined once, per-recipient values slotted in.

A template is rendered once with *slots* standing in for per-recipient values (links, the
address), the HTML goes through premailer once, and each recipient's message is then a
join of precompiled pieces with escaped values. That keeps premailer (about 4 ms) out of
the per-message path and away from Jinja syntax.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from jinja2 import Environment
from markupsafe import Markup, escape

from .mime import qp_piece, qp_pieces

_SOFT_BREAK = b"=\r\n"

# The slot marker carries a random value made when the process starts and never shown to
# anyone, so no text a person types (a subject, an intro, an action's title) can contain
# a marker: staff text is always text, whatever it says. Letters and digits only, so it
# passes through HTML, attributes, URLs and premailer unchanged.
_MARK = f"XSLOT{secrets.token_hex(8).upper()}X"
SLOT_RE = re.compile(rf"{_MARK}([a-z0-9_]+){_MARK}")


class Slot(Markup):
    """A per-recipient value's place-holder, safe for HTML, attributes and premailer."""

    def __new__(cls, name: str) -> Slot:
        return super().__new__(cls, f"{_MARK}{name}{_MARK}")


def _split(rendered: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    parts = SLOT_RE.split(rendered)
    return tuple(parts[0::2]), tuple(parts[1::2])


@dataclass(frozen=True)
class Part:
    """Text with named holes: literals[0] slot[0] literals[1] slot[1] ... literals[-1]."""

    literals: tuple[str, ...]
    slots: tuple[str, ...]
    escape_values: bool

    @classmethod
    def of(cls, rendered: str, *, html: bool) -> Part:
        literals, slots = _split(rendered)
        return cls(literals, slots, html)

    def fill(self, values: dict[str, str]) -> str:
        out = [self.literals[0]]
        for name, literal in zip(self.slots, self.literals[1:], strict=True):
            value = values[name]
            out.append(str(escape(value)) if self.escape_values else value)
            out.append(literal)
        return "".join(out)

    @cached_property
    def _qp_glue(self) -> tuple[bytes, tuple[bytes, ...]]:
        """The literals quoted-printable, encoded once for every recipient of the blast, each
        joined to the soft line breaks around the values beside it: (head, glue after each slot)."""
        literals = [qp_piece(literal) for literal in self.literals]
        head = literals[0] + _SOFT_BREAK if self.slots else literals[0]
        glue = tuple(_SOFT_BREAK + lit + (_SOFT_BREAK if i < len(literals) - 1 else b"")
                     for i, lit in enumerate(literals[1:], start=1))
        return head, glue

    def fill_qp(self, values: dict[str, str]) -> bytes:
        """`fill`, already quoted-printable: only the slots' values are encoded per recipient.

        Each value sits between soft line breaks ("=" at a line's end, which decoders drop),
        so the encoded literals never need re-wrapping around a value of any length.
        """
        return self.fill_encoded(encode_values(values, html=self.escape_values))

    def fill_encoded(self, encoded: dict[str, bytes]) -> bytes:
        """`fill_qp` with the values encoded already (once per message for both parts)."""
        head, glue = self._qp_glue
        out = [head]
        for name, after in zip(self.slots, glue, strict=True):
            out += (encoded[name], after)
        return b"".join(out)


def _needs_escape(text: str) -> bool:
    """Whether HTML escaping would change it: five substring scans beat a regex or a set."""
    return "&" in text or "<" in text or ">" in text or '"' in text or "'" in text


def encode_values(values: dict[str, str], *, html: bool,
                  plain: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """Each value quoted-printable, escaped first for HTML; with `plain` (the same values
    encoded for text), a value with nothing to escape (most links) is not encoded twice."""
    if not html:
        pieces = qp_pieces(list(values.values()))
        if pieces is not None:
            return dict(zip(values, pieces, strict=True))
        return {k: qp_piece(v) for k, v in values.items()}
    if plain is not None and not _needs_escape("".join(values.values())):
        return plain  # nothing to escape in any of them (one search, not one per value)
    if plain is not None:  # only those with something to escape (links with "&"), in one pass
        escaped = [k for k, v in values.items() if _needs_escape(v)]
        pieces = qp_pieces([str(escape(values[k])) for k in escaped])
        if pieces is not None:
            return {**plain, **dict(zip(escaped, pieces, strict=True))}
    return {k: qp_piece(str(escape(v))) if _needs_escape(v)
            else (plain[k] if plain is not None else qp_piece(v))
            for k, v in values.items()}


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class CompiledEmail:
    subject: Part
    html: Part
    text: Part

    def personalize(self, **values: str) -> Rendered:
        return Rendered(
            subject=self.subject.fill(values),
            html=self.html.fill(values),
            text=self.text.fill(values),
        )

    def personalize_qp(self, **values: str) -> tuple[str, bytes, bytes]:
        """(subject, text, html) with the bodies quoted-printable: the blast's per-recipient path."""
        text = encode_values(values, html=False)
        html = encode_values(values, html=True, plain=text)
        return self.subject.fill(values), self.text.fill_encoded(text), self.html.fill_encoded(html)

    def personalize_qp_with(self, values: dict[str, str], subject: str,
                            encoded: tuple[dict[str, bytes], dict[str, bytes]]) -> tuple[str, bytes, bytes]:
        """`personalize_qp` with the subject filled already and some slots encoded already, for
        the text part and for HTML (a blast's greetings: each distinct name encoded once)."""
        text = encode_values(values, html=False)
        html = encode_values(values, html=True, plain=text)
        text, html = {**text, **encoded[0]}, {**html, **encoded[1]}
        return subject, self.text.fill_encoded(text), self.html.fill_encoded(html)


def inline_css(html: str) -> str:
    """premailer with the network off; cssutils' chatter about modern CSS is not an error."""
    from premailer import Premailer  # here: its import is slow, and only compiling needs it

    logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
    return Premailer(
        html,
        allow_network=False,
        keep_style_tags=True,  # media queries for phones stay in <style>
        strip_important=False,
        remove_classes=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()


def _strip_indentation(html: str) -> str:
    """Template indentation is bytes to send and sign for nothing (emails have no <pre>).

    A line that would start with "." (a CSS class in <style>) keeps one space instead, which
    HTML does not see: SMTP would otherwise double that dot in every copy (RFC 5321 4.5.2),
    a copy of the whole message per recipient."""
    lines = (line.strip() for line in html.splitlines())
    return "\n".join(" " + line if line[:1] == "." else line for line in lines if line)


def compile_email(env: Environment, name: str, slots: tuple[str, ...], **context: Any) -> CompiledEmail:
    """Render `templates/email/<name>.{html,txt}` once with slots for per-recipient values."""
    holders = {slot: Slot(slot) for slot in slots}
    html_t = env.get_template(f"email/{name}.html")
    text_t = env.get_template(f"email/{name}.txt")
    full = {**context, **holders}
    subject = "".join(text_t.blocks["subject"](text_t.new_context(full))).strip()
    subject = " ".join(subject.split())  # a header is one line, whatever the template did
    html = _strip_indentation(inline_css(html_t.render(full)))
    text = text_t.render(full).strip() + "\n"
    return CompiledEmail(
        subject=Part.of(subject, html=False),
        html=Part.of(html, html=True),
        text=Part.of(text, html=False),
    )


def compiled(name: str, slots: tuple[str, ...], context: Callable[[], dict],
             version: tuple = ()) -> CompiledEmail:
    """The one cache of compiled emails, per process: premailer runs once per template, version
    and language.

    `version` names what the context is built from (an alert's text and actions), so an
    edit compiles afresh; `context()` is only called on a miss. The language is the one being
    rendered in (`i18n.in_language`): one compiled email per language, never per recipient.
    """
    from flask import current_app
    from flask_babel import get_locale

    cache: dict = current_app.extensions.setdefault("alerts.compiled_emails", {})
    key = (name, slots, version, str(get_locale()))
    if key not in cache:
        if len(cache) > 64:
            cache.clear()
        cache[key] = compile_email(current_app.jinja_env, name, slots, **context())
    return cache[key]


_ALLOWED_TAGS = {"p", "br", "strong", "em", "b", "i", "a", "ul", "ol", "li", "blockquote", "h2", "h3"}


def markdown_html(source: str) -> Markup:
    """Staff-written Markdown to HTML that is safe to put in an email (no raw HTML, no scripts)."""
    import nh3
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark", {"html": False, "linkify": False}).render(source or "")
    # bandit B704 (Markup on untrusted data): nh3 has just cleaned it to the allow-list.
    return Markup(  # nosec B704
        nh3.clean(
            html,
            tags=_ALLOWED_TAGS,
            attributes={"a": {"href", "title"}},
            url_schemes={"http", "https", "mailto"},
            link_rel="noopener",
        )
    )
