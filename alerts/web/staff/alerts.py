"""Staff pages for alerts: compose, preview, test, send, follow, pause, resume, cancel."""

from __future__ import annotations

import logging
import smtplib
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import (
    current_app,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from wtforms import SelectChoice

from ...actions import ordered_actions
from ...blasts import content, control, progress, scheduling, sending, state
from ...blasts.compose import ComposeError, save_alert
from ...extensions import db
from ...mail.smtp import MailConfigError
from ...models import Alert, AlertState
from . import PER_PAGE, bp, current_staff, org_zone
from .forms import AlertForm, LaunchForm, ScheduleForm, SendTestForm

log = logging.getLogger(__name__)

# The email preview is staff-written content: no scripts, no forms, no requests out but images.
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; font-src https: data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)


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
            db.session.commit()
            flash("Draft saved. Check the preview, send yourself a test, then send it.", "success")
            return redirect(url_for("staff.alert", alert_id=saved.id), code=303)
    status = 400 if request.method == "POST" else 200
    return render_template("staff/compose.html", form=form, alert=alert, error=error), status


@bp.get("/alerts")
def alerts():
    page = request.args.get("page", 1, type=int)
    query = sa.select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc())
    pagination = db.paginate(query, page=page, per_page=PER_PAGE, error_out=False)
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
    return _alert_page(db.get_or_404(Alert, alert_id))


def _alert_page(item: Alert, schedule_form: ScheduleForm | None = None, code: int = 200):
    status = progress.status(item.id)
    test_form = SendTestForm(data={"to": current_staff().email})
    if schedule_form is None:
        when = item.scheduled_for.astimezone(org_zone()) if item.scheduled_for else None
        schedule_form = ScheduleForm(formdata=None,
                                     data={"at": when.strftime("%Y-%m-%dT%H:%M") if when else ""})
    return render_template(
        "staff/alert.html",
        alert=item,
        status=status,
        test_form=test_form,
        schedule_form=schedule_form,
        org_timezone=current_app.config["ORG_TIMEZONE"],
        recipients=state.recipient_count() if item.state == AlertState.DRAFT else None,
        included=content.rendered_actions(item),
    ), code


@bp.post("/alerts/<int:alert_id>/schedule")
def alert_schedule(alert_id: int):
    """Schedule or reschedule a draft; the time is read in the organisation's zone."""
    item = db.get_or_404(Alert, alert_id)
    form = ScheduleForm()
    if form.validate_on_submit():
        local = datetime.fromisoformat(form.at.data).replace(tzinfo=org_zone())
        try:
            scheduling.schedule(item.id, local.astimezone(UTC))
        except state.BlastError as exc:
            db.session.rollback()
            form.at.errors = [f"{exc}."]
        else:
            db.session.commit()
            flash(f"Scheduled: beat starts this alert at {form.at.data.replace('T', ' ')} "
                  f"({current_app.config['ORG_TIMEZONE']}).", "success")
            return redirect(url_for("staff.alert", alert_id=item.id, _anchor="schedule"), code=303)
    return _alert_page(item, form, 400)


@bp.post("/alerts/<int:alert_id>/unschedule")
def alert_unschedule(alert_id: int):
    return _control(alert_id, scheduling.unschedule, "Unscheduled. The alert is a draft again; "
                    "nothing is sent until you send or schedule it.")


@bp.get("/alerts/<int:alert_id>/preview.html")
def alert_preview_html(alert_id: int):
    rendered = content.preview(db.get_or_404(Alert, alert_id))
    response = make_response(rendered.html)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/alerts/<int:alert_id>/preview.txt")
def alert_preview_text(alert_id: int):
    rendered = content.preview(db.get_or_404(Alert, alert_id))
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
        sending.send_test(item.id, to)
    except state.BlastError as exc:
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
    recipients = state.recipient_count()
    form = LaunchForm()
    if request.method == "POST" and form.validate_on_submit():
        if recipients == 0:
            flash("There are no confirmed subscribers to send to.", "error")
            return back
        try:
            total = control.launch(item.id)
        except state.BlastError as exc:
            db.session.rollback()
            flash(f"Not sent: {exc}.", "error")
            return back
        db.session.commit()
        flash(f"Sending to {total} subscriber(s). You can pause or cancel below.", "success")
        return back
    status = 400 if request.method == "POST" else 200
    return render_template(
        "staff/send.html", alert=item, form=form, recipients=recipients,
        included=content.rendered_actions(item),
    ), status


@bp.get("/alerts/<int:alert_id>/status.json")
def alert_status(alert_id: int):
    try:
        status = progress.status(alert_id)
    except state.BlastError as exc:
        return jsonify(error=str(exc)), 404
    return jsonify(status)


def _control(alert_id: int, operation, done: str):
    db.get_or_404(Alert, alert_id)
    try:
        operation(alert_id)
    except state.BlastError as exc:
        db.session.rollback()
        flash(f"{exc}.", "error")
    else:
        db.session.commit()
        flash(done, "success")
    return redirect(url_for("staff.alert", alert_id=alert_id), code=303)


@bp.post("/alerts/<int:alert_id>/pause")
def alert_pause(alert_id: int):
    return _control(alert_id, control.pause, "Paused. Messages already handed to the mail server "
                    "still arrive; nothing more is sent until you resume.")


@bp.post("/alerts/<int:alert_id>/resume")
def alert_resume(alert_id: int):
    return _control(alert_id, control.resume, "Resumed.")


@bp.post("/alerts/<int:alert_id>/cancel")
def alert_cancel(alert_id: int):
    return _control(alert_id, control.cancel, "Cancelled. Subscribers not yet sent to are skipped.")


