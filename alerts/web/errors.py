"""Every 4xx/5xx answer is a readable page, never a stack trace or a blank 500.

The pages speak the visitor's language (staff pages the default); the API's problem+json stays English.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

from flask import Flask, current_app, jsonify, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import refresh
from flask_limiter import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue
    from werkzeug.wrappers import Response

from .. import i18n
from ..extensions import DATABASE_DOWN, database_down_reason, limiter
from . import preferences
from .api import problems

log = logging.getLogger(__name__)

MESSAGES = {
    400: _l("Something in that request wasn't right. Please go back and try again."),
    401: _l("Please log in to use the staff pages."),
    403: _l("You don't have access to this page."),
    404: _l("We couldn't find that page."),
    405: _l("That page can't be used this way."),
    413: _l("That was more than we can accept."),
    429: _l("Too many requests from your connection. Please wait a little and try again."),
}
# The pages' titles (werkzeug's names, in English, for the others).
TITLES = {
    400: _l("Bad request"),
    401: _l("Login needed"),
    403: _l("No access"),
    404: _l("Page not found"),
    405: _l("Not allowed"),
    410: _l("Gone"),
    413: _l("Too large to accept"),
    429: _l("Slow down"),
    500: _l("Something went wrong"),
    503: _l("Service unavailable"),
}
DATABASE_DOWN_TITLE = "The database is not answering"  # (the API's and JSON answers' words)
DATABASE_DOWN_PAGE_TITLE = _l("The database is not answering")
DATABASE_DOWN_MESSAGE = _l("This page needs the database, which is not answering just now, so nothing "
                           "was done. Please try again in a minute; if it lasts, tell whoever runs "
                           "this service.")
RETRY_AFTER_SECONDS = 30


def _page(code: int, title: object, message: object | None) -> str:
    """An error page from the templates alone: no context processor runs (the staff pages' one
    reads the database, which may be what failed), so an error page never fails in turn."""
    return current_app.jinja_env.get_template("error.html").render(code=code, title=title, message=message)


def _wants_json() -> bool:
    return request.path.endswith(".json") or request.accept_mimetypes.best == "application/json"


def _too_large() -> str:
    limit = request.max_content_length
    # (a no-break space: "1 MB" never splits across lines)
    size = f"{limit / 1048576:g}\u00a0MB" if limit and limit >= 1048576 else f"{(limit or 0) // 1024}\u00a0KB"
    return _("That was more than we can accept: a request here can be at most %(size)s. "
             "Please send less, or split a file into smaller ones.", size=size)


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> ResponseReturnValue:
        # Refused before the view's hooks ran: a subscriber's own page still speaks their
        # language, if the database can say which (the page is drawn either way).
        with contextlib.suppress(Exception):
            preferences.use_subscribers_language()
            refresh()
        message = _("Please reload the page and submit the form again.")
        return _page(400, _("This form has expired"), message), 400

    def database_down(exc: Exception) -> ResponseReturnValue:
        log.error("the database is not answering (%s %s): %s", request.method, request.path,
                  database_down_reason(exc))
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
        if problems.under_api():
            return problems.problem(503, DATABASE_DOWN_TITLE, "Nothing was done; try again in a minute.",
                                    headers=headers)
        if _wants_json():
            return jsonify(error=f"{DATABASE_DOWN_TITLE}.", database="down"), 503, headers
        return _page(503, DATABASE_DOWN_PAGE_TITLE, DATABASE_DOWN_MESSAGE), 503, headers

    for kind in DATABASE_DOWN:
        app.register_error_handler(kind, database_down)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        code = exc.code or 500
        if request.path.startswith("/healthz"):
            return exc
        if problems.under_api():
            if code == 413:
                with i18n.in_language(None):  # (problem+json is in English)
                    return problems.from_http_exception(exc, _too_large())
            answer = problems.from_http_exception(exc)
            if isinstance(exc, RateLimitExceeded):
                _rate_limit_headers(answer)
            return answer
        message = exc.description if getattr(exc, "shows_description", False) else MESSAGES.get(
            code, exc.description)
        if code == 413:
            message = _too_large()
        title = TITLES.get(code, exc.name)
        response = exc.get_response()
        response.data = _page(code, title, message)
        response.content_type = "text/html; charset=utf-8"
        if isinstance(exc, RateLimitExceeded):
            _rate_limit_headers(response)
        return response


def _rate_limit_headers(response: Response) -> None:
    """The headers Flask-Limiter would add, on a 429 only (RATELIMIT_HEADERS_ENABLED is off):
    the breached limit, what is left of it, when it resets, and Retry-After in seconds."""
    current = limiter.current_limit
    if current is None:
        return
    reset_at = current.reset_at
    response.headers["X-RateLimit-Limit"] = str(current.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(current.remaining)
    response.headers["X-RateLimit-Reset"] = str(reset_at)
    response.headers["Retry-After"] = str(max(0, int(reset_at - time.time())))
