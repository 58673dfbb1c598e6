"""Staff page for the welcome email new subscribers get after confirming."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from ... import i18n
from ...actions import has_version, open_actions
from ...extensions import db
from ...subscribers import welcome
from .common import record


class WelcomeForm(FlaskForm):
    subject = StringField("Subject", validators=[DataRequired("The subject is required."), Length(max=200)])
    body_md = TextAreaField(
        "Text (Markdown)", validators=[Length(max=20_000)], render_kw={"rows": 8},
        description="The open actions follow it, each with its button, in the Action Center's order.")
    subject_es = StringField("Subject in Spanish", validators=[Length(max=200)], render_kw={"lang": "es"})
    body_md_es = TextAreaField("Text in Spanish (Markdown)", validators=[Length(max=20_000)],
                               render_kw={"rows": 8, "lang": "es"})
    enabled = BooleanField("Send the welcome email after each confirmation")


def welcome_email():
    current = welcome.text()
    es = (current.translations or {}).get("es") or {}
    form = WelcomeForm(data={"subject": current.subject, "body_md": current.body_md,
                             "subject_es": es.get("subject", ""), "body_md_es": es.get("body_md", ""),
                             "enabled": current.enabled})
    before = current.translations or {}
    error = None
    if request.method == "POST" and form.validate_on_submit():
        try:
            saved = welcome.save_text(form.subject.data, form.body_md.data, form.enabled.data, translations={
                "es": {"subject": form.subject_es.data, "body_md": form.body_md_es.data}})
        except welcome.WelcomeError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            record("welcome.edit", "welcome email", subject=form.subject.data,
                   enabled=bool(form.enabled.data),
                   languages=[i18n.default_language(), *sorted(saved.translations or {})],
                   translated_changed=sorted(c for c in i18n.other_languages()
                                             if before.get(c) != (saved.translations or {}).get(c)))
            db.session.commit()
            flash("Welcome email saved.", "success")
            return redirect(url_for("staff.welcome_email"), code=303)
    status = 400 if request.method == "POST" else 200
    untranslated = [a.title for a in open_actions() if not has_version(a, "es")]
    return render_template("staff/welcome.html", form=form, error=error,
                           untranslated_actions=untranslated), status
