"""App-wide request rules, so every route (and every route added later) gets them.

- Nothing but a POST changes state: a GET, HEAD or OPTIONS request that tries to write to
  the database is stopped with an error before anything is written (link scanners send
  HEAD and GET to every link in an email). A GET that records something by contract (a
  tracked click) says so with `@records_on_get`; HEAD and OPTIONS never may.
- A request body is limited to MAX_CONTENT_LENGTH (413, a readable page); only views marked
  `@allows_large_upload` (the staff CSV imports of subscribers and signers) take up to
  STAFF_UPLOAD_MAX_BYTES, and only with a staff session, so nobody else can make the server
  spool a large body.
- Security headers on every page: no framing (but the embedded forms, marked `@framable`,
  which 'self' and EMBED_ORIGINS may frame), no sniffing, a referrer policy, HSTS when
  BASE_URL is https; pages reached by a token (`/confirm/<token>`, `/unsubscribe/<token>`,
  anything with a token in its URL) are never cached and send no referrer.
- Integer URL parts above 2^31 - 1 are a 404 (the id columns stop there).
- A NUL character in the path, the query string, a form field (or a file's name) or a JSON
  body is a 400 before any view runs: it is not text, and PostgreSQL refuses it in a string.
"""

from __future__ import annotations

from collections.abc import Callable

import flask
from flask import Flask, current_app, has_request_context, request, session
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter, Map

from ..embeds.origins import frame_ancestors
from ..models.base import MAX_ID

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The public pages' policy; staff pages send a stricter one of their own.
PUBLIC_CSP = "frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'"


class NulCharacter(BadRequest):
    """A request holds a NUL character (0x00) where text is expected."""

    description = ("That request held a NUL character (%00), which is not text. "
                   "Please go back, check what was typed or pasted, and try again.")
    shows_description = True


class SafeMethodWrite(RuntimeError):
    """A GET, HEAD or OPTIONS request tried to change the database."""


def records_on_get(view: Callable) -> Callable:
    """Allow a GET (never a HEAD) to write: only for what the contract says a GET records."""
    view.records_on_get = True  # type: ignore[attr-defined]  # a marker; mypy models no function attributes
    return view


def framable(view: Callable) -> Callable:
    """The embedded forms: framed by this site and EMBED_ORIGINS (CSP frame-ancestors), no XFO."""
    view.framable = True  # type: ignore[attr-defined]  # a marker, as above
    return view


def allows_large_upload(view: Callable) -> Callable:
    """This view takes a staff upload of up to STAFF_UPLOAD_MAX_BYTES."""
    view.allows_large_upload = True  # type: ignore[attr-defined]  # a marker, as above
    return view


def _view() -> Callable | None:
    return current_app.view_functions.get(request.endpoint) if request.endpoint else None


class Request(flask.Request):
    """Flask's request with the body limit chosen per view (and per staff session)."""

    @property
    def max_content_length(self) -> int | None:
        if (self.endpoint and getattr(_view(), "allows_large_upload", False)
                and isinstance(session.get("staff_id"), int)):
            return current_app.config["STAFF_UPLOAD_MAX_BYTES"]
        # mypy reads a property with a setter, taken from its class, as overloaded methods
        return flask.Request.max_content_length.fget(self)  # type: ignore[attr-defined]

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        flask.Request.max_content_length.fset(self, value)  # type: ignore[attr-defined]


class BoundedIntConverter(IntegerConverter):
    """`<int:…>` that stops where the id columns stop (MAX_ID), so 2**31 is a 404, not a 500."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = None, signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, MAX_ID if max is None else max, signed)


def _read_only_request() -> bool:
    if not has_request_context() or request.method not in SAFE_METHODS:
        return False
    return not (request.method == "GET" and getattr(_view(), "records_on_get", False))


def _refuse(what: str) -> None:
    raise SafeMethodWrite(
        f"{request.method} {request.path} tried to {what}: only a POST changes state. A GET "
        "that records something by contract is marked @records_on_get; HEAD never may."
    )


@event.listens_for(Session, "before_flush")
def _no_flush_on_safe_methods(session: Session, flush_context: object, instances: object) -> None:
    if (session.new or session.dirty or session.deleted) and _read_only_request():
        _refuse("write to the database")


@event.listens_for(Session, "do_orm_execute")
def _no_dml_on_safe_methods(state: ORMExecuteState) -> None:
    if (state.is_insert or state.is_update or state.is_delete) and _read_only_request():
        _refuse("write to the database")


def _token_page() -> bool:
    return any("token" in name for name in (request.view_args or {}))


def security_headers(response: flask.Response) -> flask.Response:
    headers = response.headers
    if request.endpoint and getattr(_view(), "framable", False):
        # (X-Frame-Options cannot name other sites: CSP alone says who may frame these.)
        headers.setdefault("Content-Security-Policy", embed_csp(current_app.config["EMBED_ORIGINS"],
                                                                current_app.config["BASE_URL"]))
    else:
        headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", PUBLIC_CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if current_app.config["BASE_URL"].startswith("https://"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if _token_page():
        # The token is a credential: no cache keeps the page, no Referer carries the URL.
        headers["Cache-Control"] = "no-store"
        headers["Referrer-Policy"] = "no-referrer"
        headers.setdefault("X-Robots-Tag", "noindex")
    else:
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    return response


def embed_csp(embed_origins: tuple[str, ...], base_url: str) -> str:
    """The embed pages' policy: the public one, framable by 'self' and EMBED_ORIGINS only."""
    ancestors = frame_ancestors({"EMBED_ORIGINS": embed_origins, "BASE_URL": base_url})
    return PUBLIC_CSP.replace("frame-ancestors 'none'", f"frame-ancestors {ancestors}")


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def refuse_nul() -> None:
    """Stop a request with a NUL character anywhere a view or the database would read it."""
    pairs = [*request.args.items(multi=True)]
    if request.method not in SAFE_METHODS:
        pairs += request.form.items(multi=True)
        pairs += ((name, f.filename or "") for name, f in request.files.items(multi=True))
    if _holds_nul(request.path) or any(_holds_nul(k) or _holds_nul(v) for k, v in pairs):
        raise NulCharacter()
    if request.is_json and _holds_nul(request.get_json(silent=True)):
        raise NulCharacter()


def register(app: Flask) -> None:
    """Before any blueprint: the converter must be in place when their rules are added."""
    app.request_class = Request
    app.url_map.converters["int"] = BoundedIntConverter
    app.before_request(refuse_nul)
    app.after_request(security_headers)
