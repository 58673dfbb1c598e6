"""Staff pages for alerts: compose, preview, test, send, follow, pause, resume, cancel."""

from __future__ import annotations

import json
import logging
import smtplib
from typing import Any

import sqlalchemy as sa
from flask import current_app, flash, jsonify, make_response, redirect, render_template, request, url_for
from wtforms import SelectChoice

from ... import audiences
from ...actions import ordered_actions
from ...blasts import abtest, compose, content, control, progress, scheduling, sending, state
from ...blasts.compose import ComposeError, save_alert
from ...config import POSTAL_ADDRESS_REQUIRED, postal_address_missing
from ...extensions import db
from ...mail.smtp import MailConfigError
from ...models import AbTest, Action, Alert, AlertState, Subscriber
from ...subscribers.preferences import TOPICS
from ...words import plural
from . import PER_PAGE, bp, current_staff, org_zone, page_number
from .forms import AlertForm, LaunchForm, ReminderForm, ScheduleForm, SendTestForm

# Rules the compose page does not show but keeps (a reminder's "those sent alert N").
KEPT_RULES = ("received_alert", "except_clickers_of")

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
        initial: dict[str, Any] = {"actions": [choice.value for choice in choices]}
    else:
        initial = {
            "subject": alert.subject,
            "preheader": alert.preheader,
            "intro_md": alert.intro_md,
            "actions": [a.slug for a in alert.actions],
        }
    rules = (alert.audience or {}) if alert else {}
    initial.update({
        "only_signers_of": rules.get("only_signers_of", []),
        "except_signers_of": rules.get("except_signers_of", []),
        "topics": rules.get("topics", []),
        "joined_after": rules.get("joined_after", ""),
        "joined_before": rules.get("joined_before", ""),
        "source": rules.get("source", ""),
        "engagement": ("" if not rules.get("engaged_days") else
                       "engaged" if rules.get("engaged", True) else "not-engaged"),
        "engaged_days": str(rules.get("engaged_days") or 90),
        "include_acted": rules.get("include_acted", False),
    })
    test = db.session.get(AbTest, alert.id) if alert else None
    if test is not None:
        variants = test.variants
        initial.update(subject_b=variants[1]["subject"], from_name_a=variants[0].get("from_name") or "",
                       from_name_b=variants[1].get("from_name") or "", ab_sample=str(test.sample_pct),
                       ab_wait=str(test.wait_minutes), ab_metric=test.metric)
    form = AlertForm(data=initial)
    form.actions.choices = choices
    every = [SelectChoice(a.slug, a.title) for a in ordered_actions()]
    form.only_signers_of.choices = every
    form.except_signers_of.choices = every
    form.topics.choices = [SelectChoice(slug, label) for slug, label in TOPICS]
    sources = db.session.scalars(sa.select(Subscriber.source).where(Subscriber.source.is_not(None))
                                 .distinct().order_by(Subscriber.source).limit(200))
    form.source.choices = [SelectChoice("", "Any source"), *(SelectChoice(x, x) for x in sources)]
    if rules.get("source") and rules["source"] not in [c.value for c in form.source.choices]:
        form.source.choices.append(SelectChoice(rules["source"], rules["source"]))
    form.saved_audience.choices = [SelectChoice("", "—"), *(
        SelectChoice(str(a.id), a.name, render_kw={"data-rules": json.dumps(a.rules)})
        for a in audiences.saved_audiences())]
    return form


def _rules_from(values, alert: Alert | None) -> dict:
    """The compose form's audience fields (or the live count's query) as rules."""
    engagement = values.get("engagement") or ""
    rules = {
        "only_signers_of": values.getlist("only_signers_of"),
        "except_signers_of": values.getlist("except_signers_of"),
        "topics": values.getlist("topics"),
        "joined_after": values.get("joined_after"),
        "joined_before": values.get("joined_before"),
        "source": values.get("source"),
        "engaged_days": values.get("engaged_days") if engagement else None,
        "engaged": engagement != "not-engaged",
        "include_acted": values.get("include_acted") in ("y", "on", "true", "1"),
    }
    for key in KEPT_RULES:
        kept = (alert.audience or {}).get(key) if alert is not None else None
        if kept is not None:
            rules[key] = kept
    return rules


def _linked(slugs: list[str]) -> list[int]:
    if not slugs:
        return []
    return list(db.session.scalars(sa.select(Action.id).where(Action.slug.in_(slugs), Action.is_open)))


def _number(value: str | None, name: str) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        raise abtest.AbTestError(f"{name} must be a whole number") from None


def _save_ab(alert: Alert, form: AlertForm) -> None:
    if not (form.subject_b.data or "").strip():
        abtest.remove(alert.id)
        return
    abtest.configure(alert, subjects=[alert.subject, form.subject_b.data],
                     from_names=[form.from_name_a.data, form.from_name_b.data],
                     sample_pct=_number(form.ab_sample.data, "the A/B sample"),
                     wait_minutes=_number(form.ab_wait.data, "the A/B wait"),
                     metric=form.ab_metric.data or "clicks")


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
                audience=_rules_from(request.form, alert),
            )
            _save_ab(saved, form)
            if (form.save_as.data or "").strip():
                audiences.save_audience(form.save_as.data, audiences.parse(saved.audience),
                                        current_staff().email)
        except (ComposeError, abtest.AbTestError, audiences.AudienceError) as exc:
            db.session.rollback()
            error = str(exc)
        else:
            db.session.commit()
            flash("Draft saved. Check the preview, send yourself a test, then send it.", "success")
            return redirect(url_for("staff.alert", alert_id=saved.id), code=303)
    status = 400 if request.method == "POST" else 200
    chosen = alert.actions if alert else [a for a in ordered_actions() if a.is_open]
    tagged = {t for a in chosen for t in (a.topics or [])}
    action_topics = [label for slug, label in TOPICS if slug in tagged]
    picked = [a for a in ordered_actions() if a.is_open and a.slug in (form.actions.data or [])]
    return render_template("staff/compose.html", form=form, alert=alert, error=error,
                           audience=_audience_of(alert, count=False), action_topics=action_topics,
                           intro_names=compose.intro_names(form.intro_md.data, picked)), status


def _audience_of(alert: Alert | None, *, count: bool = True) -> dict:
    """The size and the words for a draft's stored audience (or an error naming the bad rule).

    Without `count` the size is None: counting a million subscribers against the rules takes
    seconds, so the alert and compose pages fetch it afterwards (recipients.json, audience.json)
    and only the send confirmation, where staff decide, waits for it.
    """
    try:
        rules = audiences.parse(alert.audience if alert else None)
    except audiences.AudienceError as exc:
        return {"error": str(exc), "size": 0}
    linked = audiences.linked_action_ids(alert) if alert else _linked(
        [a.slug for a in ordered_actions() if a.is_open])
    description = audiences.describe(rules, linked)
    size = audiences.size(rules, linked) if count else None
    return {"size": size, "description": description, "rules": rules.to_json(),
            "words": audiences.sentence(size, description) if size is not None else None}


def _counted(alert: Alert) -> dict:
    """A draft's audience with its size as a blast started now would have it (counted once)."""
    audience = _audience_of(alert, count=False)
    if not audience.get("error"):
        size = state.recipient_count(alert)
        audience.update(size=size, words=audiences.sentence(size, audience["description"]))
    return audience


@bp.get("/alerts/audience.json")
def alert_audience():
    """The live count on the compose page: the size of the audience the form describes now."""
    alert = db.session.get(Alert, request.args.get("alert_id", type=int) or 0)
    try:
        rules = audiences.parse(_rules_from(request.args, alert))
    except audiences.AudienceError as exc:
        return jsonify(error=str(exc)), 400
    linked = _linked(request.args.getlist("actions"))
    size = audiences.size(rules, linked)
    description = audiences.describe(rules, linked)
    return jsonify(size=size, rules=rules.to_json(), description=description,
                   words=audiences.sentence(size, description))


@bp.get("/alerts")
def alerts():
    page = page_number()
    query = sa.select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc())
    pagination = db.paginate(query, page=page, per_page=PER_PAGE, error_out=False)
    return render_template(
        "staff/alerts.html", pagination=pagination,
        counts=progress.counts_by_alert([a.id for a in pagination.items]),
    )


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
        audience=_audience_of(item, count=False),
        included=content.rendered_actions(item),
        intro_names=compose.intro_names(item.intro_md, content.rendered_actions(item)),
        send_blocked=_send_blocked(),
        ab=db.session.get(AbTest, item.id),
        remind_form=ReminderForm(data={"subject": compose.reminder_subject(item.subject)}),
        can_remind=item.state in compose.FINISHED,
        schedule_form=schedule_form,
        org_timezone=current_app.config["ORG_TIMEZONE"],
    ), code


@bp.post("/alerts/<int:alert_id>/schedule")
def alert_schedule(alert_id: int):
    """Schedule or reschedule a draft; the time is read in the organisation's zone."""
    item = db.get_or_404(Alert, alert_id)
    form = ScheduleForm()
    if form.validate_on_submit():
        try:
            scheduling.schedule(item.id, scheduling.parse_local(form.at.data, org_zone()))
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


@bp.post("/alerts/<int:alert_id>/remind")
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
    db.session.commit()
    flash("Reminder drafted for those who did not act. Check it, then send it.", "success")
    return redirect(url_for("staff.alert", alert_id=draft.id), code=303)


def _send_blocked() -> str | None:
    """Why no blast may start here at all (said before anyone presses Send), or None."""
    return POSTAL_ADDRESS_REQUIRED if postal_address_missing(current_app.config) else None


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
    # To the top of the page, where the answer is shown (the form is right below it).
    back = redirect(url_for("staff.alert", alert_id=item.id), code=303)
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
        db.session.commit()
        if total is None:
            total = state.expected_recipients(item)
            db.session.commit()
        flash(f"Sending to {plural(total, 'subscriber')}. You can pause or cancel below.", "success")
        return back
    audience = _counted(item)
    recipients = audience["size"]
    status = 400 if request.method == "POST" else 200
    return render_template(
        "staff/send.html", alert=item, form=form, recipients=recipients,
        included=content.rendered_actions(item), send_blocked=_send_blocked(),
        audience=audience, ab=db.session.get(AbTest, item.id),
    ), status


@bp.get("/alerts/<int:alert_id>/recipients.json")
def alert_recipients(alert_id: int):
    """The draft page's count, fetched after the page: how many a blast started now would go to."""
    item = db.get_or_404(Alert, alert_id)
    if item.state != AlertState.DRAFT:
        return jsonify(error=f"This alert is {item.state}; only a draft has recipients to count."), 409
    audience = _counted(item)
    if audience.get("error"):
        return jsonify(error=audience["error"]), 400
    return jsonify(size=audience["size"], description=audience["description"], words=audience["words"])


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


