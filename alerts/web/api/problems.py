"""Every error under /api/ as application/problem+json (RFC 9457), never an HTML page."""

from __future__ import annotations

from typing import Any

from flask import Response, json, request
from werkzeug.exceptions import HTTPException

PREFIX = "/api/"
PROBLEM_TYPE = "about:blank"  # RFC 9457: the title is the status's own phrase
PROBLEM_MEDIA_TYPE = "application/problem+json"


def under_api() -> bool:
    return request.path.startswith(PREFIX)


def _field_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs' nested messages ({"json": {"email": ["..."]}}) as {"email": ["..."]}."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = str(key) if not prefix else f"{prefix}.{key}"
            if prefix == "" and key in ("json", "query", "path", "form", "headers"):
                name = ""
            out.update(_field_errors(value, name))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "body"] = list(messages)
    elif isinstance(messages, list):
        for index, item in enumerate(messages):
            out.update(_field_errors(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix or "body"] = [str(messages)]
    return out


def problem(status: int, title: str, detail: str | None = None, *,
            errors: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"type": PROBLEM_TYPE, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MEDIA_TYPE)
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_http_exception(exc: HTTPException, detail: str | None = None) -> Response:
    """An HTTPException (abort, routing, webargs' 422) as a problem, keeping its headers
    (Allow on a 405, Retry-After on a 429, WWW-Authenticate on a 401)."""
    code = exc.code or 500
    data = getattr(exc, "data", None) or {}
    errors = _field_errors(data["messages"]) if "messages" in data else None
    if detail is None:
        detail = data.get("message") or exc.description
        if errors and code == 422 and not data.get("message"):
            detail = "Some fields were not accepted: " + ", ".join(sorted(errors)) + "."
    if code == 400 and errors and "body" in errors and not data.get("message"):
        detail = " ".join(errors["body"])
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return problem(code, exc.name, detail, errors=errors, headers=headers)
