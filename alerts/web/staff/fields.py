"""Staff pages for people's fields: the built-in ones' settings, and the custom fields staff
define, change and remove (alerts.subscribers.fields checks every setting).

The staff blueprint's table routes to these views, so its login gate and security headers apply.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import Length

from ...extensions import db
from ...models import SubscriberFieldValue
from ...subscribers import fields
from ..forms import ButtonForm
from .common import record


class FieldSettingsForm(FlaskForm):
    """What staff may change of any field: never its key or kind."""

    label = StringField("Label", validators=[Length(max=fields.LABEL_MAX)],
                        description="What the signup form and the staff pages call it.")
    choices = TextAreaField("Choices", render_kw={"rows": 5},
                            description="For one choice or several choices: one per line.")
    required = BooleanField("Required on the signup form")
    on_signup = BooleanField("Shown on the signup form")


class NewFieldForm(FieldSettingsForm):
    key = StringField("Key", validators=[Length(max=40)],
                      description="Lower-case letters, digits and _, like school_district: the CSV "
                                  "header and the {school_district|…} slot in an alert. It cannot change.")
    kind = SelectField("Kind", choices=[SelectChoice(k, fields.KIND_NAMES[k]) for k in fields.KINDS],
                       validate_choice=False)


def _lines(text: str | None) -> list[str]:
    return [line for line in (text or "").splitlines() if line.strip()]


def _errors_onto(form: FlaskForm, errors: dict[str, str]) -> None:
    """FieldError's messages next to the inputs they are about (the rest above the form)."""
    for name, message in errors.items():
        target = form._fields.get(name)
        if target is not None and name != "csrf_token":
            target.errors = [message]
        else:
            form.form_errors.append(message)


def _values_count(field_id: int | None) -> int:
    if field_id is None:
        return 0
    return db.session.scalar(sa.select(sa.func.count(sa.distinct(SubscriberFieldValue.subscriber_id)))
                             .where(SubscriberFieldValue.field_id == field_id)) or 0


def _list_page(form: NewFieldForm, status: int = 200):
    defs = fields.definitions()
    people = sa.func.count(sa.distinct(SubscriberFieldValue.subscriber_id))
    rows = db.session.execute(sa.select(SubscriberFieldValue.field_id, people)
                              .group_by(SubscriberFieldValue.field_id))
    counts = {field_id: n for field_id, n in rows}
    return render_template("staff/fields.html", defs=defs, form=form, counts=counts), status


def fields_page():
    return _list_page(NewFieldForm(formdata=None))


def field_add():
    form = NewFieldForm()
    if not form.validate_on_submit():
        return _list_page(form, 400)
    try:
        row = fields.define(form.key.data or "", form.label.data or "", form.kind.data or "",
                            _lines(form.choices.data), required=form.required.data,
                            on_signup=form.on_signup.data)
    except fields.FieldError as exc:
        db.session.rollback()
        _errors_onto(form, exc.errors)
        return _list_page(form, 400)
    record("field.create", f"field {row.key}", label=row.label, kind=row.kind, choices=row.choices or [],
           required=row.required, on_signup=row.on_signup)
    db.session.commit()
    flash(f"Field “{row.label}” added.", "success")
    return redirect(url_for("staff.fields"), code=303)


def _field_or_404(key: str) -> fields.FieldDef:
    fdef = fields.by_key().get(key)
    if fdef is None:
        abort(404)
    return fdef


def field_edit(key: str):
    fdef = _field_or_404(key)
    form = FieldSettingsForm(data={"label": fdef.label, "choices": "\n".join(fdef.choices),
                                   "required": fdef.required, "on_signup": fdef.on_signup})
    form.choices.description = ("One per line. A choice taken away is no longer offered; those who "
                                "chose it keep it, and staff still see it.")
    if not form.is_submitted():
        return render_template("staff/field_edit.html", fdef=fdef, form=form)
    if form.validate_on_submit():
        choices = _lines(form.choices.data) if fdef.kind in ("choice", "choices") else None
        try:
            after = fields.change(key, label=form.label.data or "", required=form.required.data,
                                  on_signup=form.on_signup.data, choices=choices)
        except fields.FieldError as exc:
            db.session.rollback()
            _errors_onto(form, exc.errors)
        else:
            changed = [name for name in ("label", "choices", "required", "on_signup")
                       if getattr(after, name) != getattr(fdef, name)]
            record("field.edit", f"field {key}", changed=changed, label=after.label,
                   choices=list(after.choices), required=after.required, on_signup=after.on_signup)
            db.session.commit()
            flash(f"Field “{after.label}” saved.", "success")
            return redirect(url_for("staff.fields"), code=303)
    return render_template("staff/field_edit.html", fdef=fdef, form=form), 400


def field_remove(key: str):
    fdef = _field_or_404(key)
    if fdef.builtin:
        abort(404)  # built-in fields are hidden from the form, never removed
    form = ButtonForm()
    having = _values_count(fdef.id)
    if form.validate_on_submit():
        fields.remove(key)
        record("field.remove", f"field {key}", label=fdef.label, kind=fdef.kind,
               subscribers_with_value=having)
        db.session.commit()
        flash(f"Field “{fdef.label}” removed, with its values.", "success")
        return redirect(url_for("staff.fields"), code=303)
    status = 400 if form.is_submitted() else 200
    return render_template("staff/field_remove.html", fdef=fdef, form=form, having=having), status
