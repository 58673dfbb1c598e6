"""Staff pages (behind login): one blueprint, a module per area.

Every view module adds its routes to `bp`; the gate in front of them (login required,
security headers) lives here, so no staff route can be added without it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, request, session, url_for

from ...blasts import progress
from . import auth

bp = Blueprint("staff", __name__, url_prefix="/staff")

# The only staff endpoints reachable without a login.
OPEN_ENDPOINTS = {"staff.login"}
PER_PAGE = 50

# Staff pages load only this site's files and cannot be framed elsewhere.
STAFF_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


# -- login, and the gate in front of every other page ------------------------------


MAX_PAGE = 1_000_000  # beyond any list here; keeps OFFSET inside the databases' integers


def page_number() -> int:
    """The `page` query argument, 1 when missing or nonsense, never past MAX_PAGE."""
    page = request.args.get("page", 1, type=int)
    return min(max(page, 1), MAX_PAGE)


def current_staff():
    user = auth.current_staff()
    assert user is not None  # the before_request gate let this request through
    return user


@bp.before_request
def require_login():
    if request.endpoint in OPEN_ENDPOINTS or auth.current_staff() is not None:
        return None
    had_session = auth.SESSION_USER in session
    if had_session:
        session.clear()  # expired, or the account is gone: nothing of it stays
    if request.endpoint == "staff.alert_status":
        return jsonify(error="login required"), 401
    if request.method not in ("GET", "HEAD"):
        abort(401)
    if had_session:
        flash("Your session has ended. Please log in again.", "info")
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("staff.login", next=target))


@bp.after_request
def security_headers(response):
    response.headers.setdefault("Content-Security-Policy", STAFF_CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def staff_context() -> dict:
    return {"staff_user": auth.current_staff()}


@bp.app_template_filter("when")
def format_when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def org_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["ORG_TIMEZONE"])


@bp.app_template_filter("org_time")
def format_org_time(value: datetime | None) -> str:
    """A time as the organisation reads it, with UTC beside it when the zone is not UTC."""
    if value is None:
        return "—"
    local = value.astimezone(org_zone())
    text = local.strftime("%a %d %b %Y, %H:%M %Z")
    if local.utcoffset():
        text += value.astimezone(UTC).strftime(" (%H:%M UTC)")
    return text


@bp.app_template_filter("percent")
def format_percent(value: float) -> str:
    """100.0 as 100 and 33.3 as 33.3, as JavaScript's String() writes them."""
    return f"{value:g}"


@bp.app_template_filter("duration")
def format_duration(seconds: float | None) -> str:
    return progress.duration_words(seconds)



# The view modules: imported last, each adds its routes to `bp`.
from . import (  # noqa: E402, F401
    actions,
    alerts,
    dashboard,
    data,
    login,
    reports,
    subscribers,
    suppressions,
    welcome,
)
