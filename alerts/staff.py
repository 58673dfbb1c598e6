"""Staff pages (behind login): actions, alerts from draft to sent, and the subscriber list."""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from wtforms import SelectChoice

from . import auth, blasts
from .compose import ComposeError, save_alert
from .extensions import db, limiter
from .mailer import MailConfigError
from .models import (
    Action,
    Alert,
    AlertState,
    StaffUser,
    Subscriber,
    SubscriberStatus,
)
from .seed import slugify
from .staff_accounts import check_password
from .staff_forms import ActionForm, AlertForm, LaunchForm, LoginForm, SendTestForm

log = logging.getLogger(__name__)
bp = Blueprint("staff", __name__, url_prefix="/staff")

# The only staff endpoints reachable without a login.
OPEN_ENDPOINTS = {"staff.login"}
SUBSCRIBERS_PER_PAGE = 50
BAD_LOGIN = "That email and password don't match a staff account."
LOCKED = ("Too many failed logins for this account. It is locked for {minutes} more minute(s); "
          "try again later or ask another staff member to check the account.")

# Staff pages load only this site's files and cannot be framed elsewhere.
STAFF_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# The email preview is staff-written content: no scripts, no forms, no requests out but images.
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; font-src https: data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)


# -- login, and the gate in front of every other page ------------------------------


def current_staff() -> StaffUser:
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


@bp.app_template_filter("percent")
def format_percent(value: float) -> str:
    """100.0 as 100 and 33.3 as 33.3, as JavaScript's String() writes them."""
    return f"{value:g}"


@bp.app_template_filter("duration")
def format_duration(seconds: float | None) -> str:
    """Time left as a person says it; staff.js formats the live values the same way."""
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {round(seconds % 3600 / 60)} min"


def _login_rate_limit() -> str:
    return current_app.config["STAFF_LOGIN_RATE_LIMIT"]


def _locked_page(form: LoginForm, seconds: int):
    minutes = max(1, -(-seconds // 60))
    return render_template("staff/login.html", form=form, error=LOCKED.format(minutes=minutes)), 429


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"], deduct_when=lambda r: r.status_code >= 400)
def login():
    form = LoginForm()
    if request.method == "GET":
        if auth.current_staff() is not None:
            return redirect(auth.safe_next(request.args.get("next")) or url_for("staff.dashboard"))
        form.next.data = auth.safe_next(request.args.get("next")) or ""
        return render_template("staff/login.html", form=form)
    if not form.validate_on_submit():
        return render_template("staff/login.html", form=form), 400
    email = form.email.data.strip().lower()
    if seconds := auth.lockout_seconds_left(email):
        return _locked_page(form, seconds)
    user = check_password(email, form.password.data)
    if user is None:
        if auth.record_failure(email):
            seconds = auth.lockout_seconds_left(email) or current_app.config["STAFF_LOCKOUT_SECONDS"]
            return _locked_page(form, seconds)
        log.info("failed staff login from %s", request.remote_addr)
        return render_template("staff/login.html", form=form, error=BAD_LOGIN), 401
    auth.clear_failures(email)
    auth.login(user)
    return redirect(auth.safe_next(form.next.data) or url_for("staff.dashboard"), code=303)


@bp.post("/logout")
def logout():
    auth.logout()
    flash("You are logged out.", "info")
    return redirect(url_for("staff.login"), code=303)


# -- the dashboard ------------------------------------------------------------------------


def subscriber_counts() -> dict[str, int]:
    rows = db.session.execute(
        sa.select(Subscriber.status, sa.func.count()).group_by(Subscriber.status)
    ).all()
    by = dict(rows)
    counts = {s.value: by.get(s.value, 0) for s in SubscriberStatus}
    counts["all"] = sum(by.values())
    return counts


@bp.get("/")
def dashboard():
    recent = db.session.scalars(
        sa.select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc()).limit(8)
    ).all()
    open_actions = db.session.scalar(
        sa.select(sa.func.count()).select_from(Action).where(Action.is_open.is_(True))
    )
    return render_template(
        "staff/dashboard.html", counts=subscriber_counts(), alerts=recent, open_actions=open_actions
    )


# -- actions -------------------------------------------------------------------------------


def ordered_actions() -> list[Action]:
    return list(db.session.scalars(sa.select(Action).order_by(Action.position, Action.id)))


def _slug_owner(slug: str, exclude_id: int | None) -> Action | None:
    query = sa.select(Action).where(Action.slug == slug)
    if exclude_id is not None:
        query = query.where(Action.id != exclude_id)
    return db.session.scalar(query)


def _free_slug(base: str, exclude_id: int | None) -> str:
    slug, n = base, 1
    while _slug_owner(slug, exclude_id) is not None:
        n += 1
        suffix = f"-{n}"
        slug = base[: 120 - len(suffix)] + suffix
    return slug


def _save_action(form: ActionForm, action: Action | None) -> Action | None:
    """Apply a validated form; None (with the problem on the form) when the slug is taken."""
    exclude = action.id if action else None
    slug = (form.slug.data or "").strip()
    if slug:
        owner = _slug_owner(slug, exclude)
        if owner is not None:
            form.slug.errors.append(f"The slug “{slug}” is already used by “{owner.title}”.")
            return None
    else:
        slug = _free_slug(slugify(form.title.data), exclude)
    if action is None:
        last = db.session.scalar(sa.select(sa.func.max(Action.position))) or 0
        action = Action(position=last + 10)
        db.session.add(action)
    action.slug = slug
    action.title = " ".join(form.title.data.split())
    action.summary = (form.summary.data or "").strip()
    action.call_to_action = " ".join(form.call_to_action.data.split())
    action.kind = form.kind.data
    action.url = (form.url.data or "").strip() or None
    action.is_open = bool(form.is_open.data)
    db.session.commit()
    return action


def _action_page(form: ActionForm, action: Action | None):
    if request.method == "POST" and form.validate_on_submit():
        saved = _save_action(form, action)
        if saved is not None:
            flash(f"Saved “{saved.title}”.", "success")
            return redirect(url_for("staff.actions"), code=303)
    status = 400 if request.method == "POST" else 200
    return render_template("staff/action_form.html", form=form, action=action), status


@bp.get("/actions")
def actions():
    return render_template("staff/actions.html", actions=ordered_actions())


@bp.route("/actions/new", methods=["GET", "POST"])
def action_new():
    return _action_page(ActionForm(), None)


@bp.route("/actions/<int:action_id>/edit", methods=["GET", "POST"])
def action_edit(action_id: int):
    action = db.get_or_404(Action, action_id)
    return _action_page(ActionForm(obj=action), action)


@bp.post("/actions/<int:action_id>/toggle")
def action_toggle(action_id: int):
    action = db.get_or_404(Action, action_id)
    action.is_open = not action.is_open
    db.session.commit()
    flash(f"“{action.title}” is now {'open' if action.is_open else 'closed'}.", "success")
    return redirect(url_for("staff.actions"), code=303)


@bp.post("/actions/<int:action_id>/move")
def action_move(action_id: int):
    """Swap with the neighbour, then renumber, so equal or gappy positions still move."""
    direction = request.form.get("direction")
    if direction not in ("up", "down"):
        abort(400)
    items = ordered_actions()
    index = next((i for i, a in enumerate(items) if a.id == action_id), None)
    if index is None:
        abort(404)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(items):
        items[index], items[other] = items[other], items[index]
        for position, item in enumerate(items, start=1):
            item.position = position * 10
        db.session.commit()
    return redirect(url_for("staff.actions", _anchor=f"action-{action_id}"), code=303)


# -- alerts: compose ------------------------------------------------------------------------


def _alert_form(alert: Alert | None) -> AlertForm:
    """Open actions to choose from (plus any closed one the draft still names)."""
    chosen = {a.slug for a in alert.actions} if alert else None
    choices = []
    for action in ordered_actions():
        if action.is_open:
            choices.append(SelectChoice(action.slug, action.title))
        elif chosen and action.slug in chosen:
            choices.append(SelectChoice(action.slug, f"{action.title} (closed: will not be included)"))
    if alert is None:
        initial = {"actions": [choice.value for choice in choices]}
    else:
        initial = {
            "subject": alert.subject,
            "preheader": alert.preheader,
            "intro_md": alert.intro_md,
            "actions": [a.slug for a in alert.actions],
        }
    form = AlertForm(data=initial)
    form.actions.choices = choices
    return form


def _compose_page(alert: Alert | None):
    if alert is not None and alert.state != AlertState.DRAFT:
        flash(f"This alert is {alert.state}; only a draft can be edited.", "error")
        return redirect(url_for("staff.alert", alert_id=alert.id), code=303)
    form = _alert_form(alert)
    error = None
    if request.method == "POST" and form.validate_on_submit():
        try:
            saved = save_alert(
                alert,
                subject=form.subject.data,
                intro_md=form.intro_md.data or "",
                preheader=form.preheader.data or "",
                action_slugs=form.actions.data,
                created_by=current_staff().email,
            )
        except ComposeError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            flash("Draft saved. Check the preview, send yourself a test, then send it.", "success")
            return redirect(url_for("staff.alert", alert_id=saved.id), code=303)
    status = 400 if request.method == "POST" else 200
    return render_template("staff/compose.html", form=form, alert=alert, error=error), status


@bp.get("/alerts")
def alerts():
    page = request.args.get("page", 1, type=int)
    query = sa.select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc())
    pagination = db.paginate(query, page=page, per_page=SUBSCRIBERS_PER_PAGE, error_out=False)
    return render_template("staff/alerts.html", pagination=pagination)


@bp.route("/alerts/new", methods=["GET", "POST"])
def alert_new():
    return _compose_page(None)


@bp.route("/alerts/<int:alert_id>/edit", methods=["GET", "POST"])
def alert_edit(alert_id: int):
    return _compose_page(db.get_or_404(Alert, alert_id))


# -- alerts: look, test, send ---------------------------------------------------------------


@bp.get("/alerts/<int:alert_id>")
def alert(alert_id: int):
    item = db.get_or_404(Alert, alert_id)
    status = blasts.status(item.id)
    test_form = SendTestForm(data={"to": current_staff().email})
    return render_template(
        "staff/alert.html",
        alert=item,
        status=status,
        test_form=test_form,
        recipients=blasts.recipient_count() if item.state == AlertState.DRAFT else None,
        included=blasts.rendered_actions(item),
    )


@bp.get("/alerts/<int:alert_id>/preview.html")
def alert_preview_html(alert_id: int):
    rendered = blasts.preview(db.get_or_404(Alert, alert_id))
    response = make_response(rendered.html)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/alerts/<int:alert_id>/preview.txt")
def alert_preview_text(alert_id: int):
    rendered = blasts.preview(db.get_or_404(Alert, alert_id))
    body = f"Subject: {rendered.subject}\n\n{rendered.text}"
    return body, 200, {
        "Content-Type": "text/plain; charset=utf-8",
        # Shown in the alert page's preview frame, like the HTML version.
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'self'; sandbox",
        "X-Frame-Options": "SAMEORIGIN",
    }


@bp.post("/alerts/<int:alert_id>/test")
def alert_test(alert_id: int):
    item = db.get_or_404(Alert, alert_id)
    form = SendTestForm()
    back = redirect(url_for("staff.alert", alert_id=item.id, _anchor="test"), code=303)
    if not form.validate_on_submit():
        flash("Test not sent: " + " ".join(e for errs in form.errors.values() for e in errs), "error")
        return back
    to = form.to.data.strip()
    try:
        blasts.send_test(item.id, to)
    except blasts.BlastError as exc:
        flash(f"Test not sent: {exc}.", "error")
    except (OSError, smtplib.SMTPException, MailConfigError) as exc:
        log.warning("test send of alert %s to %s failed: %s", item.id, to, exc)
        flash(f"Test not sent: the mail server could not be reached or refused it ({exc}). "
              "Nothing was sent to subscribers.", "error")
    else:
        flash(f"Test sent to {to}. Its subject starts with [TEST].", "success")
    return back


@bp.route("/alerts/<int:alert_id>/send", methods=["GET", "POST"])
def alert_send(alert_id: int):
    """The confirmation step: the count and the subject, and a box to tick, before anything goes."""
    item = db.get_or_404(Alert, alert_id)
    back = redirect(url_for("staff.alert", alert_id=item.id), code=303)
    if item.state != AlertState.DRAFT:
        flash(f"This alert is {item.state}; only a draft can be sent.", "error")
        return back
    recipients = blasts.recipient_count()
    form = LaunchForm()
    if request.method == "POST" and form.validate_on_submit():
        if recipients == 0:
            flash("There are no confirmed subscribers to send to.", "error")
            return back
        try:
            total = blasts.launch(item.id)
        except blasts.BlastError as exc:
            db.session.rollback()
            flash(f"Not sent: {exc}.", "error")
            return back
        flash(f"Sending to {total} subscriber(s). You can pause or cancel below.", "success")
        return back
    status = 400 if request.method == "POST" else 200
    return render_template(
        "staff/send.html", alert=item, form=form, recipients=recipients,
        included=blasts.rendered_actions(item),
    ), status


@bp.get("/alerts/<int:alert_id>/status.json")
def alert_status(alert_id: int):
    try:
        status = blasts.status(alert_id)
    except blasts.BlastError as exc:
        return jsonify(error=str(exc)), 404
    return jsonify(status)


def _control(alert_id: int, operation, done: str):
    db.get_or_404(Alert, alert_id)
    try:
        operation(alert_id)
    except blasts.BlastError as exc:
        db.session.rollback()
        flash(f"{exc}.", "error")
    else:
        flash(done, "success")
    return redirect(url_for("staff.alert", alert_id=alert_id), code=303)


@bp.post("/alerts/<int:alert_id>/pause")
def alert_pause(alert_id: int):
    return _control(alert_id, blasts.pause, "Paused. Messages already handed to the mail server "
                    "still arrive; nothing more is sent until you resume.")


@bp.post("/alerts/<int:alert_id>/resume")
def alert_resume(alert_id: int):
    return _control(alert_id, blasts.relaunch, "Resumed.")


@bp.post("/alerts/<int:alert_id>/cancel")
def alert_cancel(alert_id: int):
    return _control(alert_id, blasts.cancel, "Cancelled. Subscribers not yet sent to are skipped.")


# -- subscribers ----------------------------------------------------------------------------


@bp.get("/subscribers")
def subscribers():
    status = request.args.get("status", "")
    if status not in {s.value for s in SubscriberStatus}:
        status = ""
    q = " ".join(request.args.get("q", "").split())[:254]
    page = request.args.get("page", 1, type=int)
    query = sa.select(Subscriber).order_by(Subscriber.created_at.desc(), Subscriber.id.desc())
    if status:
        query = query.where(Subscriber.status == status)
    if q:
        query = query.where(sa.func.lower(Subscriber.email).contains(q.lower(), autoescape=True))
    pagination = db.paginate(query, page=page, per_page=SUBSCRIBERS_PER_PAGE, error_out=False)
    return render_template(
        "staff/subscribers.html",
        pagination=pagination,
        counts=subscriber_counts(),
        status=status,
        q=q,
        statuses=[s.value for s in SubscriberStatus],
    )
