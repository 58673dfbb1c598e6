"""The staff pages' forms: what each accepts and the message a person sees when it does not."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import URL, DataRequired, InputRequired, Length, Optional, Regexp
from wtforms.widgets import CheckboxInput, ListWidget

# Loose on purpose: staff addresses like staff@localhost (dev mode) must work for test sends.
ADDRESS = Regexp(r"^[^@\s]+@[^@\s]+$", message="Enter an email address like name@example.org.")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email address.")])
    password = PasswordField("Password", validators=[DataRequired("Enter your password.")])
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
    summary = TextAreaField("Summary", description="One paragraph, as on the Action Center.")
    call_to_action = StringField(
        "Call to action",
        description="The button's words, e.g. “Sign the Petition”.",
        validators=[DataRequired("The call to action is required."), Length(max=80)],
    )
    kind = SelectField("Kind", choices=[("petition", "Petition"), ("pledge", "Pledge")])
    url = StringField(
        "Link (optional)",
        description="Where the button goes; leave blank for the action's own page here.",
        validators=[
            Optional(),
            Length(max=500),
            URL(require_tld=False, message="Enter a full address starting with https://"),
            Regexp(r"^https?://", message="Enter a full address starting with https://"),
        ],
    )
    is_open = BooleanField("Open (listed on the Action Center and in new alerts)", default=True)


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
    )
    actions = MultiCheckboxField(
        "Actions", validators=[InputRequired("Choose at least one action.")]
    )


class SendTestForm(FlaskForm):
    to = EmailField("Send a test to", validators=[DataRequired("Enter an address."), ADDRESS])


class LaunchForm(FlaskForm):
    confirm = BooleanField(
        "I have checked the preview and the test email",
        validators=[DataRequired("Tick the box to confirm.")],
    )
