"""Staff pages for one alert: look, preview, test, schedule, send, follow, pause, resume, cancel."""

from __future__ import annotations

import logging
import smtplib

import sqlalchemy as sa
from flask import current_app, flash, jsonify, make_response, redirect, render_template, request, url_for

from ... import i18n
from ...blasts import approval, compose, content, control, personal, progress, scheduling, sending, state
from ...blasts.compose import ComposeError
from ...config import POSTAL_ADDRESS_REQUIRED, postal_address_missing
from ...extensions import db
from ...mail.rendering import Rendered
from ...mail.smtp import MailConfigError
from ...models import AbTest, Alert, AlertState, JourneyStep, email_hash
from ...words import plural
from ..filters import org_zone
from .common import current_staff, record
from .compose import audience_of, counted
from .forms import LaunchForm, ReminderForm, ScheduleForm, SendTestForm

log = logging.getLogger(__name__)

# The email preview is staff-written content: no scripts, no forms, no requests out but images.
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; font-src https: data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)


def alert(alert_id: int):
    item = db.get_or_404(Alert, alert_id)
    if item.state == AlertState.JOURNEY:  # a journey step's email: composed on its journey's page
        step = db.session.scalar(sa.select(JourneyStep).where(JourneyStep.alert_id == item.id))
        if step is not None:
            return redirect(url_for("staff.journey_step_edit", journey_id=step.journey_id, step_id=step.id),
                            code=303)
    return _alert_page(item)


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
        audience=audience_of(item, count=False),
        included=content.rendered_actions(item),
        intro_names=compose.intro_names(item.intro_md, content.rendered_actions(item)),
        greets=bool(personal.tokens_in(item.subject, item.preheader, intro=item.intro_md)),
        send_blocked=_send_blocked(),
        ab=db.session.get(AbTest, item.id),
        remind_form=ReminderForm(data={"subject": compose.reminder_subject(item.subject)}),
        can_remind=item.state in compose.FINISHED,
        schedule_form=schedule_form,
        org_timezone=current_app.config["ORG_TIMEZONE"],
        approval=approval.standing(item, None) if item.state == AlertState.DRAFT else None,
        may_approve=approval.approver_refusal(item, current_staff(), current_staff().email) is None,
        start_refused=scheduling.refusal(item),
    ), code


def alert_schedule(alert_id: int):
    """Schedule or reschedule a draft; the time is read in the organisation's zone."""
    item = db.get_or_404(Alert, alert_id)
    form = ScheduleForm()
    if form.validate_on_submit():
        try:
            at = scheduling.parse_local(form.at.data, org_zone())
            scheduling.schedule(item.id, at)
        except state.BlastError as exc:
            db.session.rollback()
            form.at.errors = [f"{exc}."]
        else:
            record("alert.schedule", f"alert {item.id}", at=at.isoformat())
            db.session.commit()
            flash(f"Scheduled: beat starts this alert at {form.at.data.replace('T', ' ')} "
                  f"({current_app.config['ORG_TIMEZONE']}).", "success")
            return redirect(url_for("staff.alert", alert_id=item.id, _anchor="schedule"), code=303)
    return _alert_page(item, form, 400)


def alert_unschedule(alert_id: int):
    return _control(alert_id, scheduling.unschedule, "alert.unschedule",
                    "Unscheduled. The alert is a draft again; "
                    "nothing is sent until you send or schedule it.")


def alert_remind(alert_id: int):
    """Remind those who did not act: a new draft to the same recipients minus signers."""
    item = db.get_or_404(Alert, alert_id)
    form = ReminderForm()
    if not form.validate_on_submit():
        flash("Reminder not made: " + " ".join(e for errs in form.errors.values() for e in errs), "error")
        return redirect(url_for("staff.alert", alert_id=item.id, _anchor="remind"), code=303)
    try:
        draft = compose.reminder(item.id, minus_clickers=form.minus_clickers.data,
                                 created_by=current_staff().email, subject=form.subject.data)
    except ComposeError as exc:
        db.session.rollback()
        flash(f"Reminder not made: {exc}.", "error")
        return redirect(url_for("staff.alert", alert_id=item.id, _anchor="remind"), code=303)
    record("alert.remind", f"alert {draft.id}", parent=item.id, minus_clickers=bool(form.minus_clickers.data))
    db.session.commit()
    flash("Reminder drafted for those who did not act. Check it, then send it.", "success")
    return redirect(url_for("staff.alert", alert_id=draft.id), code=303)


def _send_blocked() -> str | None:
    """Why no blast may start here at all (said before anyone presses Send), or None."""
    return POSTAL_ADDRESS_REQUIRED if postal_address_missing(current_app.config) else None


def _preview(alert_id: int) -> Rendered:
    """The preview as a sample reader by name, or (?reader=nameless) one whose greetings fall back."""
    person = None if request.args.get("reader") == "nameless" else personal.SAMPLE
    return content.preview(db.get_or_404(Alert, alert_id), person=person, lang=request.args.get("lang"))


def alert_preview_html(alert_id: int):
    rendered = _preview(alert_id)
    response = make_response(rendered.html)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def alert_preview_text(alert_id: int):
    rendered = _preview(alert_id)
    body = f"Subject: {rendered.subject}\n\n{rendered.text}"
    return body, 200, {
        "Content-Type": "text/plain; charset=utf-8",
        # Shown in the alert page's preview frame, like the HTML version.
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'self'; sandbox",
        "X-Frame-Options": "SAMEORIGIN",
    }


def alert_test(alert_id: int):
    item = db.get_or_404(Alert, alert_id)
    form = SendTestForm()
    # To the top of the page, where the answer is shown (the form is right below it); the
    # approve page sends its own test and comes back to it.
    page = "staff.alert_approve" if request.form.get("back") == "approve" else "staff.alert"
    back = redirect(url_for(page, alert_id=item.id), code=303)
    if not form.validate_on_submit():
        flash("Test not sent: " + " ".join(e for errs in form.errors.values() for e in errs), "error")
        return back
    to = form.to.data.strip()
    lang = "es" if form.in_spanish.data else None
    try:
        sending.send_test(item.id, to, lang)
    except state.BlastError as exc:
        flash(f"Test not sent: {exc}.", "error")
    except (OSError, smtplib.SMTPException, MailConfigError) as exc:
        log.warning("test send of alert %s to %s failed: %s", item.id, to, exc)
        flash(f"Test not sent: the mail server could not be reached or refused it ({exc}). "
              "Nothing was sent to subscribers.", "error")
    else:
        record("alert.test", f"alert {item.id}", to_hash=email_hash(to)[:16],
               language=content.AlertText.of(item, lang).lang or i18n.default_language())
        db.session.commit()
        english = lang and "es" not in content.alert_languages(item)
        flash(f"Test sent to {to}. Its subject starts with [TEST]."
              + (" Spanish readers get this alert in English: it (or one of its actions) has no "
                 "Spanish version." if english else ""), "success")
    return back


def alert_send(alert_id: int):
    """The confirmation step: the count and the subject, and a box to tick, before anything goes."""
    item = db.get_or_404(Alert, alert_id)
    back = redirect(url_for("staff.alert", alert_id=item.id), code=303)
    if item.state != AlertState.DRAFT:
        flash(f"This alert is {item.state}; only a draft can be sent.", "error")
        return back
    form = LaunchForm()
    if request.method == "POST" and form.validate_on_submit():
        # No count before the send (a second or more at a million): the first message goes
        # out while the page counts, after the commit.
        try:
            total = control.launch(item.id)
            if total == 0:
                raise state.BlastError("there are no confirmed subscribers to send to")
        except state.BlastError as exc:
            db.session.rollback()
            flash(f"Not sent: {exc}.", "error")
            return back
        record("alert.send", f"alert {item.id}", subject=item.subject, recipients=total)
        db.session.commit()
        if total is None:
            total = state.expected_recipients(item)
            db.session.commit()
        flash(f"Sending to {plural(total, 'subscriber')}. You can pause or cancel below.", "success")
        return back
    audience = counted(item)
    recipients = audience["size"]
    status = 400 if request.method == "POST" else 200
    standing = approval.standing(item, recipients)
    return render_template(
        "staff/send.html", alert=item, form=form, recipients=recipients,
        included=content.rendered_actions(item),
        send_blocked=_send_blocked() or (standing.words if standing.state in ("needed", "void") else None),
        audience=audience, ab=db.session.get(AbTest, item.id),
        needs_approval=standing.state in ("needed", "void"),
    ), status


def alert_recipients(alert_id: int):
    """The draft page's count, fetched after the page: how many a blast started now would go to."""
    item = db.get_or_404(Alert, alert_id)
    if item.state != AlertState.DRAFT:
        return jsonify(error=f"This alert is {item.state}; only a draft has recipients to count."), 409
    audience = counted(item)
    if audience.get("error"):
        return jsonify(error=audience["error"]), 400
    return jsonify(size=audience["size"], description=audience["description"], words=audience["words"])


def alert_status(alert_id: int):
    try:
        status = progress.status(alert_id)
    except state.BlastError as exc:
        return jsonify(error=str(exc)), 404
    return jsonify(status)


def _control(alert_id: int, operation, action: str, done: str):
    db.get_or_404(Alert, alert_id)
    try:
        operation(alert_id)
    except state.BlastError as exc:
        db.session.rollback()
        flash(f"{exc}.", "error")
    else:
        record(action, f"alert {alert_id}")
        db.session.commit()
        flash(done, "success")
    return redirect(url_for("staff.alert", alert_id=alert_id), code=303)


def alert_pause(alert_id: int):
    return _control(alert_id, control.pause, "alert.pause",
                    "Paused. Messages already handed to the mail server "
                    "still arrive; nothing more is sent until you resume.")


def alert_resume(alert_id: int):
    return _control(alert_id, control.resume, "alert.resume", "Resumed.")


def alert_cancel(alert_id: int):
    return _control(alert_id, control.cancel, "alert.cancel",
                    "Cancelled. Subscribers not yet sent to are skipped.")
