"""The staff blueprint: the gate in front of every staff page, then the route table.

The gate (login required, the staff security headers) is the blueprint's own, so every rule
added below gets it; the view modules import no blueprint, and their decorators (a rate
limit, a large-upload allowance) stay on the view.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, request, session, url_for

from ... import twofactor
from ...permissions import Permission, allows
from . import (
    account,
    action_images,
    actions,
    api_tokens,
    approval,
    audit_trail,
    auth,
    compose,
    dashboard,
    data,
    fields,
    invitations,
    journeys,
    login,
    reports,
    sending,
    staff_accounts,
    subscribers,
    suppressions,
    two_factor,
    webhooks,
    welcome,
)

bp = Blueprint("staff", __name__, url_prefix="/staff")

# The only staff endpoints reachable without a login.
OPEN_ENDPOINTS = {"staff.login", "staff.login_2fa", "staff.invite"}

# All a grace login reaches while its role must use 2FA and the account has none yet.
SETUP_ENDPOINTS = {"staff.account_2fa", "staff.account_2fa_enable", "staff.logout"}

# What each staff endpoint needs (alerts/permissions.py), filled by the route table below:
# the gate checks it before every view, so a rule cannot be added without one.
ENDPOINT_PERMISSIONS: dict[str, Permission] = {}

# Staff pages load only this site's files and cannot be framed elsewhere.
STAFF_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


# -- login, and the gate in front of every other page ------------------------------


@bp.before_request
def require_login():
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    user = auth.current_staff()
    if user is not None:
        needed = ENDPOINT_PERMISSIONS.get(request.endpoint or "")
        if needed is None or not allows(user.role, needed):
            abort(403)  # before the view runs: nothing is read or changed for it
        if (request.endpoint not in SETUP_ENDPOINTS and not twofactor.enabled(user)
                and twofactor.required(user, current_app.config)):
            if request.method in ("GET", "HEAD"):
                return redirect(url_for("staff.account_2fa"))
            abort(403)  # a grace login changes nothing until two-factor login is set up
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


def _can(permission: str) -> bool:
    """`can("send")` in a template: whether the logged-in account's role holds that permission."""
    user = auth.current_staff()
    return user is not None and allows(user.role, Permission(permission))


@bp.context_processor
def staff_context() -> dict:
    return {"staff_user": auth.current_staff(), "can": _can}


# -- the route table ----------------------------------------------------------------

GET = ("GET",)
POST = ("POST",)
GET_POST = ("GET", "POST")
VIEW, COMPOSE, SEND, DATA, STAFF, INTEGRATIONS = (
    Permission.VIEW, Permission.COMPOSE, Permission.SEND, Permission.DATA, Permission.STAFF,
    Permission.INTEGRATIONS,
)


def rule(path: str, endpoint: str, view, *, methods: tuple[str, ...], needs: Permission | None) -> None:
    """One staff route and the permission it needs (None: open, or any logged-in account)."""
    bp.add_url_rule(path, endpoint, view, methods=methods)
    if needs is not None:
        ENDPOINT_PERMISSIONS[f"staff.{endpoint}"] = needs


rule("/login", "login", login.login, methods=GET_POST, needs=None)
rule("/login/2fa", "login_2fa", login.login_2fa, methods=GET_POST, needs=None)
rule("/logout", "logout", login.logout, methods=POST, needs=VIEW)
rule("/account/2fa", "account_2fa", two_factor.account_2fa, methods=GET, needs=VIEW)
rule("/account/2fa", "account_2fa_enable", two_factor.account_2fa_enable, methods=POST, needs=VIEW)
rule("/account/2fa/recovery-codes", "account_2fa_recovery_codes", two_factor.account_2fa_recovery_codes,
     methods=POST, needs=VIEW)
rule("/account/2fa/disable", "account_2fa_disable", two_factor.account_2fa_disable, methods=POST,
     needs=VIEW)
rule("/staff/<int:staff_id>/2fa/reset", "staff_2fa_reset", two_factor.staff_2fa_reset, methods=POST,
     needs=STAFF)

rule("/", "dashboard", dashboard.dashboard, methods=GET, needs=VIEW)
rule("/charts.part", "dashboard_charts_part", dashboard.dashboard_charts_part, methods=GET, needs=VIEW)
rule("/charts", "dashboard_charts_page", dashboard.dashboard_charts_page, methods=GET, needs=VIEW)

rule("/actions", "actions", actions.actions, methods=GET, needs=VIEW)
rule("/actions/new", "action_new", actions.action_new, methods=GET_POST, needs=COMPOSE)
rule("/actions/<int:action_id>/edit", "action_edit", actions.action_edit, methods=GET_POST, needs=COMPOSE)
rule("/actions/<int:action_id>/toggle", "action_toggle", actions.action_toggle, methods=POST, needs=COMPOSE)
rule("/actions/<int:action_id>/move", "action_move", actions.action_move, methods=POST, needs=COMPOSE)
rule("/actions/<int:action_id>/image", "action_image", action_images.action_image, methods=GET_POST,
     needs=COMPOSE)
rule("/actions/<int:action_id>/image/remove", "action_image_remove", action_images.action_image_remove,
     methods=POST, needs=COMPOSE)
rule("/actions/<int:action_id>/signatures", "action_signatures", actions.action_signatures, methods=GET,
     needs=VIEW)
rule("/actions/<int:action_id>/signatures.csv", "action_signatures_csv", actions.action_signatures_csv,
     methods=GET, needs=DATA)
rule("/actions/<int:action_id>/signatures/import", "action_signatures_import",
     actions.action_signatures_import, methods=POST, needs=DATA)
rule("/actions/<int:action_id>/calls.csv", "action_calls_csv", actions.action_calls_csv, methods=GET,
     needs=DATA)  # names and addresses, like the signatures' export

# Alerts: compose (the list, a draft, its audience and A/B test) ...
rule("/alerts", "alerts", compose.alerts, methods=GET, needs=VIEW)
rule("/alerts/audience.json", "alert_audience", compose.alert_audience, methods=GET, needs=VIEW)
rule("/alerts/new", "alert_new", compose.alert_new, methods=GET_POST, needs=COMPOSE)
rule("/alerts/<int:alert_id>/edit", "alert_edit", compose.alert_edit, methods=GET_POST, needs=COMPOSE)
# ... then look, preview, test, schedule, send and control the blast.
rule("/alerts/<int:alert_id>", "alert", sending.alert, methods=GET, needs=VIEW)
rule("/alerts/<int:alert_id>/preview.html", "alert_preview_html", sending.alert_preview_html, methods=GET,
     needs=VIEW)
rule("/alerts/<int:alert_id>/preview.txt", "alert_preview_text", sending.alert_preview_text, methods=GET,
     needs=VIEW)
rule("/alerts/<int:alert_id>/test", "alert_test", sending.alert_test, methods=POST, needs=COMPOSE)
rule("/alerts/<int:alert_id>/schedule", "alert_schedule", sending.alert_schedule, methods=POST, needs=SEND)
rule("/alerts/<int:alert_id>/unschedule", "alert_unschedule", sending.alert_unschedule, methods=POST,
     needs=SEND)
rule("/alerts/<int:alert_id>/remind", "alert_remind", sending.alert_remind, methods=POST, needs=COMPOSE)
rule("/alerts/<int:alert_id>/approval-request", "alert_approval_request", approval.alert_approval_request,
     methods=POST, needs=COMPOSE)
rule("/alerts/<int:alert_id>/approve", "alert_approve", approval.alert_approve, methods=GET_POST, needs=SEND)
rule("/alerts/<int:alert_id>/send", "alert_send", sending.alert_send, methods=GET_POST, needs=SEND)
rule("/alerts/<int:alert_id>/recipients.json", "alert_recipients", sending.alert_recipients, methods=GET,
     needs=VIEW)
rule("/alerts/<int:alert_id>/status.json", "alert_status", sending.alert_status, methods=GET, needs=VIEW)
rule("/alerts/<int:alert_id>/pause", "alert_pause", sending.alert_pause, methods=POST, needs=SEND)
rule("/alerts/<int:alert_id>/resume", "alert_resume", sending.alert_resume, methods=POST, needs=SEND)
rule("/alerts/<int:alert_id>/cancel", "alert_cancel", sending.alert_cancel, methods=POST, needs=SEND)
rule("/alerts/<int:alert_id>/report", "alert_report", reports.alert_report_page, methods=GET, needs=VIEW)

rule("/subscribers", "subscribers", subscribers.subscribers, methods=GET, needs=VIEW)
rule("/subscribers/import", "data_import", data.data_import, methods=GET_POST, needs=DATA)
rule("/subscribers/export.csv", "data_export", data.data_export, methods=GET, needs=DATA)
rule("/subscribers/<int:subscriber_id>", "data_subscriber", data.data_subscriber, methods=GET, needs=VIEW)
rule("/subscribers/<int:subscriber_id>/edit", "data_subscriber_edit", data.data_subscriber_edit,
     methods=POST, needs=DATA)
rule("/subscribers/<int:subscriber_id>/data.json", "data_subscriber_json", data.data_subscriber_json,
     methods=GET, needs=DATA)
rule("/subscribers/<int:subscriber_id>/erase", "data_subscriber_erase", data.data_subscriber_erase,
     methods=GET_POST, needs=DATA)

rule("/fields", "fields", fields.fields_page, methods=GET, needs=VIEW)
rule("/fields", "field_add", fields.field_add, methods=POST, needs=DATA)
rule("/fields/<key>/edit", "field_edit", fields.field_edit, methods=GET_POST, needs=DATA)
rule("/fields/<key>/remove", "field_remove", fields.field_remove, methods=GET_POST, needs=DATA)

rule("/suppressions", "suppressions", suppressions.suppressions, methods=GET, needs=VIEW)
rule("/suppressions", "suppression_add", suppressions.suppression_add, methods=POST, needs=DATA)
rule("/suppressions/<int:suppression_id>/lift", "suppression_lift", suppressions.suppression_lift,
     methods=POST, needs=DATA)
rule("/bounces", "bounce_events", suppressions.bounce_events, methods=GET, needs=VIEW)

# Journeys: the list, a new one, its timeline and figures, pause and resume, its steps.
rule("/journeys", "journeys", journeys.journeys_list, methods=GET, needs=VIEW)
rule("/journeys/new", "journey_new", journeys.journey_new, methods=GET_POST, needs=COMPOSE)
rule("/journeys/<int:journey_id>", "journey", journeys.journey, methods=GET, needs=VIEW)
rule("/journeys/<int:journey_id>/pause", "journey_pause", journeys.journey_pause, methods=POST, needs=SEND)
rule("/journeys/<int:journey_id>/resume", "journey_resume", journeys.journey_resume, methods=POST, needs=SEND)
rule("/journeys/<int:journey_id>/steps/new", "journey_step_new", journeys.journey_step_new, methods=GET_POST,
     needs=COMPOSE)
rule("/journeys/<int:journey_id>/steps/<int:step_id>", "journey_step_edit", journeys.journey_step_edit,
     methods=GET_POST, needs=COMPOSE)
rule("/journeys/<int:journey_id>/steps/<int:step_id>/remove", "journey_step_remove",
     journeys.journey_step_remove, methods=POST, needs=COMPOSE)

rule("/welcome", "welcome_email", welcome.welcome_email, methods=GET_POST, needs=COMPOSE)

rule("/api-tokens", "api_tokens", api_tokens.api_tokens, methods=GET, needs=INTEGRATIONS)
rule("/api-tokens", "api_token_create", api_tokens.api_token_create, methods=POST, needs=INTEGRATIONS)
rule("/api-tokens/<int:token_id>/revoke", "api_token_revoke", api_tokens.api_token_revoke, methods=POST,
     needs=INTEGRATIONS)

rule("/webhooks", "webhooks", webhooks.webhooks, methods=GET, needs=INTEGRATIONS)
rule("/webhooks", "webhook_add", webhooks.webhook_add, methods=POST, needs=INTEGRATIONS)
rule("/webhooks/<int:endpoint_id>", "webhook", webhooks.webhook, methods=GET, needs=INTEGRATIONS)
rule("/webhooks/<int:endpoint_id>/remove", "webhook_remove", webhooks.webhook_remove, methods=POST,
     needs=INTEGRATIONS)
rule("/webhooks/<int:endpoint_id>/enable", "webhook_enable", webhooks.webhook_enable, methods=POST,
     needs=INTEGRATIONS)
rule("/webhooks/<int:endpoint_id>/test", "webhook_test", webhooks.webhook_test, methods=POST,
     needs=INTEGRATIONS)
rule("/webhooks/<int:endpoint_id>/messages/<int:message_id>/redeliver", "webhook_redeliver",
     webhooks.webhook_redeliver, methods=POST, needs=INTEGRATIONS)

rule("/account", "account", account.account, methods=GET, needs=VIEW)
rule("/account/password", "account_password", account.account_password, methods=POST, needs=VIEW)

rule("/staff", "staff_accounts", staff_accounts.staff_accounts, methods=GET, needs=STAFF)
rule("/staff/invite", "staff_invite", staff_accounts.staff_invite, methods=POST, needs=STAFF)
rule("/staff/<int:staff_id>/invite", "staff_invite_resend", staff_accounts.staff_invite_resend, methods=POST,
     needs=STAFF)
rule("/staff/<int:staff_id>/role", "staff_role", staff_accounts.staff_role, methods=POST, needs=STAFF)
rule("/staff/<int:staff_id>/disable", "staff_disable", staff_accounts.staff_disable, methods=POST,
     needs=STAFF)
rule("/staff/<int:staff_id>/enable", "staff_enable", staff_accounts.staff_enable, methods=POST, needs=STAFF)
rule("/staff/<int:staff_id>/remove", "staff_remove", staff_accounts.staff_remove, methods=GET_POST,
     needs=STAFF)
rule("/invite/<token>", "invite", invitations.invite, methods=GET_POST, needs=None)

rule("/audit", "audit_trail", audit_trail.audit_trail, methods=GET, needs=STAFF)
rule("/audit.csv", "audit_trail_csv", audit_trail.audit_trail_csv, methods=GET, needs=STAFF)
