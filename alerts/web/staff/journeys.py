"""Staff pages for journeys: the list, one journey's timeline and figures, its steps' editor."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from ... import journeys
from ...actions import ordered_actions
from ...blasts import personal
from ...extensions import db
from ...models import Action, Journey, JourneyStep
from ...reports import charts
from ...reports import journeys as figures
from .common import current_staff, record
from .forms import MultiCheckboxField

UNITS = {"minutes": 1, "hours": 60, "days": 24 * 60}


class JourneyForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired("The name is required."), Length(max=120)])
    trigger = SelectField("Who enters it", validators=[DataRequired("Choose a trigger.")])


class StepForm(FlaskForm):
    wait = IntegerField("Wait", validators=[InputRequired("Say how long to wait (0 for at once)."),
                                            NumberRange(min=0, max=527_040)],
                        description="After the previous step (after entering, for the first).")
    unit = SelectField("Unit", choices=[SelectChoice(u, u) for u in UNITS], default="days")
    subject = StringField("Subject", validators=[DataRequired("The subject is required."), Length(max=200)],
                          description="{first_name|friend} greets by name.")
    preheader = StringField("Preheader", validators=[Length(max=200)])
    intro_md = TextAreaField("Text (Markdown)", validators=[Length(max=20_000)], render_kw={"rows": 8},
                             description="The actions chosen below follow it, each with its button.")
    actions = MultiCheckboxField("Actions the email links", choices=[])
    # (journeys.add_step checks the slug, naming the problem)
    unless_signed = SelectField("Skip it for those who signed", choices=[], validate_choice=False)
    only_if_not_clicked_previous = BooleanField("Only for those who did not click the previous step's email")
    subject_es = StringField("Subject in Spanish", validators=[Length(max=200)], render_kw={"lang": "es"})
    preheader_es = StringField("Preheader in Spanish", validators=[Length(max=200)], render_kw={"lang": "es"})
    intro_md_es = TextAreaField("Text in Spanish (Markdown)", validators=[Length(max=20_000)],
                                render_kw={"rows": 8, "lang": "es"})


def _journey(journey_id: int) -> Journey:
    journey = db.session.get(Journey, journey_id)
    if journey is None:
        abort(404)
    return journey


def _step(journey: Journey, step_id: int) -> JourneyStep:
    step = db.session.get(JourneyStep, step_id)
    if step is None or step.journey_id != journey.id or step.removed:
        abort(404)
    return step


def _wait(minutes: int) -> str:
    for unit, size in (("day", 24 * 60), ("hour", 60)):
        if minutes and minutes % size == 0:
            n = minutes // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{minutes} minute{'' if minutes == 1 else 's'}"


def journeys_list():
    rows: list[dict[str, Any]] = []
    for journey in db.session.scalars(sa.select(Journey).order_by(Journey.id)):
        now_in, ever = figures.member_count(journey.id)
        rows.append({"journey": journey, "steps": len(journey.steps), "in": now_in, "ever": ever})
    return render_template("staff/journeys.html", rows=rows, default_name=journeys.DEFAULT_NAME,
                           has_default=any(r["journey"].name == journeys.DEFAULT_NAME for r in rows))


def _triggers() -> list[SelectChoice]:
    return [SelectChoice("confirmed", "People who confirm their subscription"),
            SelectChoice("imported", "People an import puts in it (the importer chooses)"),
            *(SelectChoice(f"signed:{a.slug}", f"People who sign: {a.title}") for a in ordered_actions())]


def journey_new():
    form = JourneyForm()
    form.trigger.choices = _triggers()
    error = None
    if request.method == "POST" and form.validate_on_submit():
        try:
            journey = journeys.create(form.name.data, form.trigger.data, created_by=current_staff().email)
        except journeys.JourneyError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            record("journey.create", f"journey:{journey.id}", name=journey.name, trigger=journey.trigger)
            db.session.commit()
            flash("Journey created. Add its first email.", "success")
            return redirect(url_for("staff.journey_step_new", journey_id=journey.id), code=303)
    return render_template("staff/journey_new.html", form=form, error=error), (
        400 if request.method == "POST" else 200)


def journey(journey_id: int):
    item = _journey(journey_id)
    where = figures.members_by_step(item.id)
    actions = {a.id: a for a in db.session.scalars(sa.select(Action))}
    timeline: list[dict[str, Any]] = []
    elapsed = 0
    for n, step in enumerate(item.steps, start=1):
        elapsed += step.after_minutes
        numbers = figures.step_figures(step)
        subject = "Welcome email" if step.is_welcome else (step.alert.subject if step.alert else "")
        timeline.append({"n": n, "step": step, "wait": _wait(step.after_minutes), "at": _wait(elapsed),
                         "waiting": where.get(str(step.position), 0), "figures": numbers, "subject": subject,
                         "unless": actions.get(step.unless_signed_action_id or 0)})
    exits = {k.removeprefix("exited:"): v for k, v in where.items() if k.startswith("exited:")}
    sent = [(f"{t['n']}. {t['subject']}", t["figures"]) for t in timeline if not t["step"].is_welcome]
    chart = charts.funnel(sent, f"Per step of {item.name}: sent, clicked, signed") if sent else None
    return render_template("staff/journey.html", journey=item, timeline=timeline, exits=exits, chart=chart,
                           now_in=sum(v for k, v in where.items() if not k.startswith("exited:")))


def _pause(journey_id: int, paused: bool):
    item = _journey(journey_id)
    try:
        journeys.set_paused(item, paused)
    except journeys.JourneyError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        record("journey.pause" if paused else "journey.resume", f"journey:{item.id}")
        db.session.commit()
        flash("Journey paused: no step goes out until it is resumed." if paused
              else "Journey resumed: due steps go out at beat's next pass.", "success")
    return redirect(url_for("staff.journey", journey_id=item.id), code=303)


def journey_pause(journey_id: int):
    return _pause(journey_id, True)


def journey_resume(journey_id: int):
    return _pause(journey_id, False)


def _step_form(step: JourneyStep | None) -> StepForm:
    if step is None or step.alert is None:
        # (as a new alert: every open action, which is also what none chosen means)
        form = StepForm(data={"wait": 2, "unit": "days",
                              "actions": [a.slug for a in ordered_actions() if a.is_open]})
    else:
        alert = step.alert
        minutes = step.after_minutes
        unit = next((u for u in ("days", "hours") if minutes and minutes % UNITS[u] == 0), "minutes")
        es = (alert.translations or {}).get("es") or {}
        slugs = {a.id: a.slug for a in db.session.scalars(sa.select(Action))}
        form = StepForm(data={
            "wait": minutes // UNITS[unit], "unit": unit, "subject": alert.subject,
            "preheader": alert.preheader, "intro_md": alert.intro_md,
            "actions": [a.slug for a in alert.actions],
            "unless_signed": slugs.get(step.unless_signed_action_id or 0, ""),
            "only_if_not_clicked_previous": step.only_if_not_clicked_previous,
            "subject_es": es.get("subject", ""), "preheader_es": es.get("preheader", ""),
            "intro_md_es": es.get("intro_md", "")})
    every = ordered_actions()
    form.actions.choices = [SelectChoice(a.slug, a.title) for a in every if a.is_open]
    form.unless_signed.choices = [SelectChoice("", "Nobody: everyone gets it"),
                                  *(SelectChoice(a.slug, a.title) for a in every)]
    return form


def _save_step(journey: Journey, step: JourneyStep | None, form: StepForm) -> JourneyStep:
    values = {
        "after_minutes": int(form.wait.data) * UNITS.get(form.unit.data, 1), "subject": form.subject.data,
        "body": form.intro_md.data or "", "preheader": form.preheader.data or "",
        "unless_signed": form.unless_signed.data or None, "action_slugs": list(form.actions.data or []),
        "only_if_not_clicked_previous": bool(form.only_if_not_clicked_previous.data),
        "translations": {"es": {"subject": form.subject_es.data, "preheader": form.preheader_es.data,
                                "intro_md": form.intro_md_es.data}},
    }
    if step is None:
        return journeys.add_step(journey, created_by=current_staff().email, **values)
    return journeys.update_step(step, **values)


def _step_page(journey: Journey, step: JourneyStep | None):
    form = _step_form(step)
    error = None
    if request.method == "POST" and form.validate_on_submit():
        try:
            saved = _save_step(journey, step, form)
        except journeys.JourneyError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            record("journey.step_add" if step is None else "journey.step_edit", f"journey:{journey.id}",
                   position=saved.position, subject=form.subject.data, after_minutes=saved.after_minutes)
            db.session.commit()
            flash("Step saved. People who have not reached it get it as it is now.", "success")
            return redirect(url_for("staff.journey_step_edit", journey_id=journey.id, step_id=saved.id),
                            code=303)
    alert = step.alert if step is not None else None
    greets = bool(alert and personal.tokens_in(alert.subject, alert.preheader, intro=alert.intro_md))
    return render_template("staff/journey_step.html", journey=journey, step=step, form=form, error=error,
                           alert=alert, greets=greets), (400 if request.method == "POST" else 200)


def journey_step_new(journey_id: int):
    return _step_page(_journey(journey_id), None)


def journey_step_edit(journey_id: int, step_id: int):
    item = _journey(journey_id)
    step = _step(item, step_id)
    if step.is_welcome:
        return redirect(url_for("staff.welcome_email"), code=303)
    return _step_page(item, step)


def journey_step_remove(journey_id: int, step_id: int):
    item = _journey(journey_id)
    step = _step(item, step_id)
    try:
        journeys.remove_step(step)
    except journeys.JourneyError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        record("journey.step_remove", f"journey:{item.id}", position=step.position)
        db.session.commit()
        flash("Step removed: nobody gets it from now on; its figures stay.", "success")
    return redirect(url_for("staff.journey", journey_id=item.id), code=303)
