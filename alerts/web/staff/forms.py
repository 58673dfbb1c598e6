"""The staff pages' forms: what each accepts and the message a person sees when it does not."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

# Loose on purpose: staff addresses like staff@localhost (dev mode) must work for test sends.
ADDRESS = Regexp(r"^[^@\s]+@[^@\s]+$", message="Enter an email address like name@example.org.")


def web_address(form, field) -> None:
    parts = urlsplit(field.data or "")
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in field.data:
        raise ValidationError("Enter a full address starting with https://")


class LoginForm(FlaskForm):
    email = EmailField(
        "Email", validators=[DataRequired("Enter your email address.")],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = PasswordField(
        "Password", validators=[DataRequired("Enter your password.")],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()


class ActionForm(FlaskForm):
    title = StringField(
        "Title", validators=[DataRequired("The title is required."), Length(max=200)]
    )
    slug = StringField(
        "Slug",
        description="The address on the Action Center: /actions/<slug>. Leave blank to make one "
        "from the title.",
        validators=[
            Optional(),
            Length(max=120),
            Regexp(r"^[a-z0-9]+(-[a-z0-9]+)*$",
                   message="Use lower-case letters, digits and single hyphens only."),
        ],
    )
    summary = TextAreaField(
        "Summary", description="One paragraph, as on the Action Center.", render_kw={"rows": 4}
    )
    call_to_action = StringField(
        "Call to action",
        description="The button's words, e.g. “Sign the Petition”.",
        validators=[DataRequired("The call to action is required."), Length(max=80)],
    )
    kind = SelectField(
        "Kind", choices=[SelectChoice("petition", "Petition"), SelectChoice("pledge", "Pledge")]
    )
    url = StringField(
        "Link (optional)",
        description="Where the button goes; leave blank for the action's own page here.",
        validators=[
            Optional(),
            Length(max=500),
            web_address,
        ],
    )
    is_open = BooleanField("Open (listed on the Action Center and in new alerts)", default=True)


def at_least_one(form, field) -> None:
    """Not InputRequired: its `required` flag would make a browser demand every checkbox."""
    if not field.data:
        raise ValidationError("Choose at least one action.")


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class AlertForm(FlaskForm):
    subject = StringField(
        "Subject", validators=[DataRequired("The subject is required."), Length(max=200)]
    )
    preheader = StringField(
        "Preheader",
        description="The short line inboxes show after the subject. Aim for under 100 characters.",
        validators=[Length(max=200)],
    )
    intro_md = TextAreaField(
        "Intro (Markdown)",
        description="**bold**, *italic*, [a link](https://example.org), lists with - . "
        "HTML is not allowed and is shown as text.",
        validators=[Length(max=20_000)],
        render_kw={"rows": 10},
    )
    actions = MultiCheckboxField("Actions", validators=[at_least_one])


class SendTestForm(FlaskForm):
    to = EmailField("Send a test to", validators=[DataRequired("Enter an address."), ADDRESS])


class LaunchForm(FlaskForm):
    confirm = BooleanField(
        "I have checked the preview and the test email",
        validators=[DataRequired("Tick the box to confirm.")],
    )


class ScheduleForm(FlaskForm):
    """When to send, as a wall-clock time in the organisation's time zone (ORG_TIMEZONE)."""

    at = StringField(
        "Send at", validators=[DataRequired("Choose a date and time."),
                               Regexp(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$",
                                      message="Enter a date and time like 2026-12-01 09:00.")],
        render_kw={"type": "datetime-local"},
    )
