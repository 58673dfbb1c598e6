"""Staff pages for subscriber data: CSV import and export, one subscriber's record, erasure.

The staff blueprint's table routes to these views, so its login gate and security headers apply to them.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    HiddenField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from ... import journeys
from ...extensions import db
from ...models import Alert, Delivery, Journey, Subscriber, SubscriberStatus
from ...reports import history
from ...subscribers import exporting, fields, import_report, importing, people, privacy, welcome
from ...subscribers.import_columns import parse_mapping
from ...words import plural
from ..forms import ButtonForm
from ..security import allows_large_upload, records_on_get
from . import auth
from .common import record, record_export

REPORT_ROWS_SHOWN = 200
DELIVERIES_SHOWN = 100
# A dry run keeps the uploaded file this long, so "Import for real" needs no second upload.
KEPT_SECONDS = 24 * 3600
KEPT_NAME = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
FIELD_INPUT = "field."  # the subscriber page's custom-field inputs: field.<key>


def _kept_dir() -> Path:
    return Path(current_app.instance_path) / "imports"


def _kept_path(name: str | None) -> Path | None:
    """The file a dry run kept under this name, if the name is one of ours and it is still there."""
    if not name or not KEPT_NAME.match(name):
        return None
    path = _kept_dir() / f"{name}.csv"
    return path if path.is_file() else None


def _keep(stream) -> str:
    """Keep an uploaded file for the real import; forget files older than KEPT_SECONDS."""
    folder = _kept_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        if old.stat().st_mtime < time.time() - KEPT_SECONDS:
            old.unlink(missing_ok=True)
    name = secrets.token_urlsafe(24)
    stream.seek(0)
    with open(folder / f"{name}.csv", "wb") as out:
        while piece := stream.read(1 << 20):
            out.write(piece)
    (folder / f"{name}.csv").chmod(0o600)
    return name


class ImportForm(FlaskForm):
    file = FileField("CSV file", description="UTF-8 CSV with a header row that names the email column.")
    kept = HiddenField()  # a file a dry run kept: "Import for real" sends its name, not the file
    kept_filename = HiddenField()
    consent = RadioField(
        "How did these people consent?",
        choices=[
            SelectChoice(import_report.DOCUMENTED,
                         "We hold documented consent: add them as confirmed subscribers"),
            SelectChoice(import_report.CONFIRM_FIRST,
                         "Send each a confirmation email first: add them as pending"),
        ],
        validators=[InputRequired("Choose how these people consented.")],
    )
    source = StringField(
        "Source of consent", validators=[Length(max=import_report.SOURCE_MAX)],
        description="Where and how they agreed, e.g. “Paper petition, Pride march 2026”. "
                    "Recorded as their consent; required for documented consent.",
    )
    email_column = StringField(
        "Email column", validators=[Optional(), Length(max=200)],
        description="Only if the column is not called email, e-mail or email address.",
    )
    source_column = StringField(
        "Source column", validators=[Optional(), Length(max=200)],
        description="Optional: a column giving each row its own source.",
    )
    other_columns = TextAreaField(
        "Other columns", validators=[Optional(), Length(max=4000)],
        description="Only for a column not named like its field: one FIELD=HEADER a line, like "
                    "school_district=District. First Name, Last Name, ZIP or postcode, language, "
                    "phone and each custom field's key or label are found by their name.",
    )
    send_welcome = BooleanField("Send them the welcome email", default=False)
    # (choices: the journeys whose trigger is an import; checked in `validate_journey`)
    journey = SelectField("Put them in a journey", choices=[], validate_choice=False)
    dry_run = BooleanField("Dry run: check the file and show what would happen, change nothing",
                           default=True)

    def validate_file(self, field) -> None:
        if not field.data and _kept_path(self.kept.data) is None:
            raise ValidationError("Choose a CSV file to import." if not self.kept.data else
                                  "The checked file is no longer kept; choose it again.")

    def validate_other_columns(self, field) -> None:
        try:
            parse_mapping(self.mapping_lines(), fields.custom())
        except import_report.ImportFileError as exc:
            raise ValidationError(str(exc)[:1].upper() + str(exc)[1:] + ".") from None

    def mapping_lines(self) -> list[str]:
        return [line.strip() for line in (self.other_columns.data or "").splitlines() if line.strip()]

    def validate_send_welcome(self, field) -> None:
        if not field.data:
            return
        if self.consent.data != import_report.DOCUMENTED:
            raise ValidationError("The welcome email goes with documented consent: people who "
                                  "confirm first get it when they confirm.")
        if not welcome.text().enabled:
            raise ValidationError("The welcome email is switched off (Welcome email page); "
                                  "switch it on first, or leave this box unticked.")

    def validate_journey(self, field) -> None:
        if field.data and _import_journey(field.data) is None:
            raise ValidationError("Choose a journey that starts on an import, or none.")

    def validate_source(self, field) -> None:
        if self.consent.data == import_report.DOCUMENTED and not (field.data or "").strip():
            raise ValidationError(
                "Say where and how these people consented; it is recorded as their consent."
            )


# -- import and export -------------------------------------------------------------------


def _import_journey(value: str | None) -> Journey | None:
    """The journey an import may put people in: one whose trigger is `imported`."""
    if not value or not value.isdigit():
        return None
    journey = db.session.get(Journey, int(value))
    return journey if journey is not None and journey.trigger == "imported" else None


def _import_form() -> ImportForm:
    form = ImportForm()
    form.journey.choices = [SelectChoice("", "None: an import enters no journey"), *(
        SelectChoice(str(j.id), j.name) for j in db.session.scalars(
            sa.select(Journey).where(Journey.trigger == "imported").order_by(Journey.name)))]
    return form


@allows_large_upload
def data_import():
    form = _import_form()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return _import_page(form), status
    mapping = parse_mapping(form.mapping_lines(), fields.custom())
    if form.email_column.data:
        mapping["email"] = form.email_column.data.strip()
    if form.source_column.data:
        mapping["source"] = form.source_column.data.strip()
    kept = None if form.file.data else _kept_path(form.kept.data)
    filename = form.file.data.filename if form.file.data else (form.kept_filename.data or "the file")
    try:
        if kept is not None:
            with open(kept, "rb") as stream:
                report = _run_import(stream, form, mapping)
        else:
            report = _run_import(form.file.data.stream, form, mapping)
    except import_report.ImportFileError as exc:
        form.file.errors = [str(exc)]
        return _import_page(form), 400
    journey = _import_journey(form.journey.data)
    if journey is not None and not report.dry_run:
        entered = journeys.enter_imported(journey, report.email_keys)
        flash(f"{plural(entered, 'subscriber')} entered the journey “{journey.name}”.", "success")
    if not report.dry_run:
        record("subscribers.import", None, file=filename[:120], consent=form.consent.data,
               source=form.source.data, rows=report.rows, created=report.created,
               confirmed=report.confirmed, queued=report.queued, welcomes=report.welcomes,
               rejected=report.rejected, filled=report.filled,
               columns_not_imported=len(report.unmapped))
        db.session.commit()
    keep_as = None
    if report.dry_run:
        keep_as = form.kept.data if kept is not None else _keep(form.file.data.stream)
    elif kept is not None:
        kept.unlink(missing_ok=True)  # imported: nothing to keep any longer
    return render_template(
        "staff/data_import_report.html", report=report, filename=filename, form=form,
        keep_as=keep_as, problems=report.problems[:REPORT_ROWS_SHOWN], reasons=import_report.REASONS,
        rejected_reasons=import_report.REJECTED,
    )


def _import_page(form: ImportForm) -> str:
    return render_template("staff/data_import.html", form=form, export_columns=exporting.columns())


def _run_import(stream, form: ImportForm, mapping: dict[str, str]) -> import_report.ImportReport:
    return importing.import_file(
        stream, consent=form.consent.data, source=form.source.data, mapping=mapping,
        dry_run=form.dry_run.data, welcome=form.send_welcome.data,
    )


@records_on_get  # the export goes on the audit trail
def data_export():
    status = request.args.get("status") or None
    if status is not None and status not in {s.value for s in SubscriberStatus}:
        abort(400)
    name = f"subscribers-{status or 'all'}-{datetime.now(UTC):%Y-%m-%d}.csv"
    record_export("subscribers.export", None, status=status or "all")
    return Response(
        stream_with_context(exporting.export_csv(status)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- one subscriber ----------------------------------------------------------------------


def _subscriber_or_404(subscriber_id: int) -> Subscriber:
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None:
        abort(404)
    return sub


def _subscriber_page(sub: Subscriber, typed: dict[str, object] | None = None,
                     errors: dict[str, str] | None = None, status: int = 200):
    """One subscriber's record; `typed` and `errors`: an edit that could not be kept, as given."""
    deliveries = db.session.execute(
        sa.select(Delivery, Alert.subject)
        .join(Alert, Alert.id == Delivery.alert_id)
        .where(Delivery.subscriber_id == sub.id)
        .order_by(Delivery.id.desc())
        .limit(DELIVERIES_SHOWN)
    ).all()
    delivery_count = db.session.scalar(
        sa.select(sa.func.count()).select_from(Delivery).where(Delivery.subscriber_id == sub.id)
    )
    suppression, why = history.suppression_reason(sub) or (None, None)
    custom = fields.custom()
    values = fields.values_for([sub.id]).get(sub.id, {})
    if typed is None:
        typed = {name: getattr(sub, name) or "" for name in people.PROFILE_FIELDS}
        typed["phone"] = fields.shown_phone(sub.phone)
        typed.update({f.key: values.get(f.key, []) for f in custom})
    return render_template(
        "staff/data_subscriber.html", sub=sub, deliveries=deliveries, delivery_count=delivery_count,
        suppression=suppression, suppressed_why=why, events=history.for_subscriber(sub),
        custom=custom, values=values, typed=typed, errors=errors or {},
        shown_phone=fields.shown_phone(sub.phone), languages=current_app.config["LANGUAGES"],
    ), status


def data_subscriber(subscriber_id: int):
    return _subscriber_page(_subscriber_or_404(subscriber_id))


PROFILE_LABELS = {"first_name": "First name", "last_name": "Last name", "postal_code": "Postal code",
                  "phone": "Phone", "language": "Language"}


def _said(label: str, message: str) -> str:
    """A profile check's message as a sentence: "Phone is not a phone number…", "Postal code: letters…"."""
    return f"{label} {message}" if message.startswith("is ") else f"{label}: {message}"


def _typed_fields(custom: list[fields.FieldDef]) -> dict[str, list[str]]:
    """The custom fields as the edit form sent them, each a list like the values kept."""
    out: dict[str, list[str]] = {}
    for fdef in custom:
        name = FIELD_INPUT + fdef.key
        given = request.form.getlist(name) if fdef.kind == "choices" else [request.form.get(name, "")]
        out[fdef.key] = [" ".join(v.split()) for v in given if v and v.strip()]
    return out


def data_subscriber_edit(subscriber_id: int):
    """Staff change a subscriber's profile and custom fields: one audit row naming the fields
    changed (never their values)."""
    sub = _subscriber_or_404(subscriber_id)
    form = ButtonForm()
    if not form.validate_on_submit():
        abort(400)
    custom = fields.custom()
    kept = fields.values_for([sub.id]).get(sub.id, {})
    typed_custom = _typed_fields(custom)
    typed: dict[str, object] = {name: request.form.get(name, "") for name in people.PROFILE_FIELDS}
    errors: dict[str, str] = {}
    try:
        profile = people.clean_profile(dict(typed))
    except people.ProfileError as exc:
        errors.update({name: _said(PROFILE_LABELS.get(name, name), message)
                       for name, message in exc.errors.items()})
        profile = {}
    # Only what staff changed is checked: a value given before a choice was taken away stays.
    given = {key: values for key, values in typed_custom.items()
             if sorted(values) != sorted(kept.get(key, []))}
    try:
        cleaned = fields.clean_values(given, custom)
    except fields.FieldError as exc:
        errors.update(exc.errors)
        cleaned = {}
    typed.update(typed_custom)
    if errors:
        return _subscriber_page(sub, typed, errors, 400)
    changed_profile = {name: value for name, value in profile.items() if getattr(sub, name) != value}
    changed_custom = {key: values for key, values in cleaned.items()
                      if sorted(values) != sorted(kept.get(key, []))}
    changed = [*changed_profile, *changed_custom]
    if not changed:
        flash("Nothing changed.", "info")
        return redirect(url_for("staff.data_subscriber", subscriber_id=sub.id), code=303)
    people.update(sub, changed_profile)
    fields.set_values(sub.id, changed_custom)
    record("subscriber.edit", f"subscriber {sub.id}", fields=changed)
    db.session.commit()
    flash("Saved.", "success")
    return redirect(url_for("staff.data_subscriber", subscriber_id=sub.id), code=303)


@records_on_get  # the download goes on the audit trail
def data_subscriber_json(subscriber_id: int):
    payload = privacy.export_subscriber_data(subscriber_id)
    if payload is None:
        abort(404)
    record_export("subscriber.data_export", f"subscriber {subscriber_id}")
    return Response(
        json.dumps(payload, indent=2, ensure_ascii=False) + "\n",
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="subscriber-{subscriber_id}-data.json"'},
    )


def data_subscriber_erase(subscriber_id: int):
    sub = _subscriber_or_404(subscriber_id)
    form = ButtonForm()
    if form.validate_on_submit():
        user = auth.current_staff()
        privacy.erase_subscriber(sub.id, by=f"staff:{user.email if user else 'unknown'}")
        record("subscriber.erase", f"subscriber {sub.id}")
        db.session.commit()
        flash("Erased. The address is gone; only its hash stays on the suppression list, "
              "so it is never mailed again.", "success")
        return redirect(url_for("staff.subscribers"), code=303)
    status = 400 if form.is_submitted() else 200
    return render_template("staff/data_erase.html", sub=sub, form=form), status
