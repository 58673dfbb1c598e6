"""Staff page for the welcome email new subscribers get after confirming."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from ...extensions import db
from ...subscribers import welcome
from .common import record


class WelcomeForm(FlaskForm):
    subject = StringField("Subject", validators=[DataRequired("The subject is required."), Length(max=200)])
    body_md = TextAreaField(
        "Text (Markdown)", validators=[Length(max=20_000)], render_kw={"rows": 8},
        description="The open actions follow it, each with its button, in the Action Center's order.")
    enabled = BooleanField("Send the welcome email after each confirmation")


def welcome_email():
    current = welcome.text()
    form = WelcomeForm(data={"subject": current.subject, "body_md": current.body_md,
                             "enabled": current.enabled})
    error = None
    if request.method == "POST" and form.validate_on_submit():
        try:
            welcome.save_text(form.subject.data, form.body_md.data, form.enabled.data)
        except welcome.WelcomeError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            record("welcome.edit", "welcome email", subject=form.subject.data,
                   enabled=bool(form.enabled.data))
            db.session.commit()
            flash("Welcome email saved.", "success")
            return redirect(url_for("staff.welcome_email"), code=303)
    status = 400 if request.method == "POST" else 200
    return render_template("staff/welcome.html", form=form, error=error), status
