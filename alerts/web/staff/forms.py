"""The staff pages' forms: what each accepts and the message a person sees when it does not."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    EmailField,
    Field,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, EqualTo, Length, NumberRange, Optional, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ...permissions import DEFAULT_ROLE, DESCRIPTIONS, ROLES
from ...subscribers.preferences import TOPICS

# Loose here on purpose: the test send itself checks the address, as every send does.
ADDRESS = Regexp(r"^[^@\s]+@[^@\s]+$", message="Enter an email address like name@example.org.")


def web_address(form: FlaskForm, field: Field) -> None:
    parts = urlsplit(field.data or "")
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in field.data:
        raise ValidationError("Enter a full address starting with https://")


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


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


class CodeForm(FlaskForm):
    """A code from the authenticator app (6 digits), or at login a recovery code instead."""

    code = StringField(
        "Code",
        validators=[DataRequired("Enter the code."), Length(max=40, message="That is too long for a code.")],
        render_kw={"autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false"},
    )


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
        "Kind", choices=[SelectChoice("petition", "Petition"), SelectChoice("pledge", "Pledge"),
                         SelectChoice("letter", "Letter"),
                         SelectChoice("call", "Call")],
        description="A letter's signers send it to its targets by email; a call's signers phone "
        "them.",
    )
    url = StringField(
        "Hosted elsewhere at (optional)",
        description="For an action signed on another site: its address. Alerts and the Action Center "
        "link there, and its signers can be imported on the signatures page. Blank: signed here.",
        validators=[
            Optional(),
            Length(max=500),
            web_address,
        ],
    )
    is_open = BooleanField("Open (listed on the Action Center and in new alerts)", default=True)
    topics = MultiCheckboxField(
        "Topics", choices=[SelectChoice(slug, label) for slug, label in TOPICS],
        description="What it is about: alerts can then be sent to those who chose these topics.")
    target = StringField(
        "Target (optional)",
        description="Whom it addresses, on the page's “To:” line, e.g. “Mayor Adams” or “Congress”. "
        "Whom a letter is sent to or a call is made to are its targets, below.",
        validators=[Optional(), Length(max=200)],
    )
    body = TextAreaField(
        "Full text", description="What the action's page says. Blank lines separate paragraphs; "
        "the summary is used when this is empty.", render_kw={"rows": 6},
        validators=[Length(max=20_000)],
    )
    pledge_text = TextAreaField(
        "Pledge text (pledges)", description="The words a signer commits to, shown above the button.",
        render_kw={"rows": 3}, validators=[Length(max=2000)],
    )
    goal = IntegerField(
        "Goal (optional)", description="Signatures to aim for; blank shows the next round number.",
        validators=[Optional(), NumberRange(min=1, max=100_000_000,
                                            message="Enter a whole number of signatures, 1 or more.")],
    )
    # The Spanish version (optional): the Spanish pages and emails show it, else the English whole.
    title_es = StringField("Title in Spanish", validators=[Optional(), Length(max=200)],
                           render_kw={"lang": "es"})
    summary_es = TextAreaField("Summary in Spanish", render_kw={"rows": 4, "lang": "es"})
    call_to_action_es = StringField("Call to action in Spanish", validators=[Optional(), Length(max=80)],
                                    description="e.g. “Firme la petición”.", render_kw={"lang": "es"})
    body_es = TextAreaField("Full text in Spanish", render_kw={"rows": 6, "lang": "es"},
                            validators=[Length(max=20_000)])
    pledge_text_es = TextAreaField("Pledge text in Spanish (pledges)", render_kw={"rows": 3, "lang": "es"},
                                   validators=[Length(max=2000)])
    target_es = StringField("Addressed to, in Spanish", validators=[Optional(), Length(max=200)],
                            description="e.g. “El alcalde Adams”; left blank, the English name is shown.",
                            render_kw={"lang": "es"})
    call_script_es = TextAreaField("Call script in Spanish", render_kw={"rows": 5, "lang": "es"},
                                   validators=[Length(max=5000)])
    # A letter's subject and text, a call's script, and the targets of either.
    letter_subject = StringField(
        "Letter subject", description="The subject of the email each target receives.",
        validators=[Length(max=200)],
    )
    letter_text = TextAreaField(
        "Letter text", description="What every signer's letter says, signed with their name. "
        "Blank lines separate paragraphs.", render_kw={"rows": 8}, validators=[Length(max=20_000)],
    )
    own_paragraph = BooleanField("Signers may add their own paragraph to the letter")
    call_script = TextAreaField(
        "Call script", description="What a caller says, shown next to the numbers.",
        render_kw={"rows": 5}, validators=[Length(max=5000)],
    )
    targets = TextAreaField(
        "Targets, one per line",
        description="One per line: “Name, Title <email>” for a letter, “Name, Title tel:+12025550123” "
        "for a call. End a line with [placeholder] to mark one that must be replaced before "
        "anything is sent to it.",
        render_kw={"rows": 5, "spellcheck": "false"}, validators=[Length(max=60_000)],
    )
    targets_file = FileField(
        "Or upload the targets as CSV (optional)",
        description="Columns: name, title, email (letters) or phone (calls), and optionally "
        "placeholder (yes/no). Its list replaces the one above.",
        render_kw={"accept": ".csv,text/csv"},
    )
    allow_comments = BooleanField("Let signers add a comment")
    requires_confirmation = BooleanField(
        "A signature counts only once its address confirms by email "
        "(signatures from an alert's link count at once)"
    )


def at_least_one(form: FlaskForm, field: Field) -> None:
    """Not InputRequired: its `required` flag would make a browser demand every checkbox."""
    if not field.data:
        raise ValidationError("Choose at least one action.")


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
    # The Spanish version (optional): Spanish readers get it, else the whole alert in English.
    subject_es = StringField("Subject in Spanish", validators=[Length(max=200)], render_kw={"lang": "es"})
    preheader_es = StringField("Preheader in Spanish", validators=[Length(max=200)], render_kw={"lang": "es"})
    intro_md_es = TextAreaField("Intro in Spanish (Markdown)", validators=[Length(max=20_000)],
                                render_kw={"rows": 8, "lang": "es"})
    # The audience: names match the rule keys of alerts/audiences/rules.py.
    languages = MultiCheckboxField("Reads", validate_choice=False)
    saved_audience = SelectField("Start from a saved audience", choices=[], validate_choice=False)
    only_signers_of = MultiCheckboxField("Only those who signed", validate_choice=False)
    except_signers_of = MultiCheckboxField("Leave out those who signed", validate_choice=False)
    only_writers = BooleanField("Only those who wrote a letter (signed any letter)")
    only_callers = BooleanField("Only those who made a call (and told us how it went)")
    topics = MultiCheckboxField("Topics", validate_choice=False)
    joined_after = StringField("Joined on or after", render_kw={"type": "date"})
    joined_before = StringField("Joined before", render_kw={"type": "date"})
    source = SelectField("Source or source code", choices=[], validate_choice=False)
    engagement = SelectField("Engagement", choices=[
        SelectChoice("", "Anyone"), SelectChoice("engaged", "Clicked or signed in the last"),
        SelectChoice("not-engaged", "Neither clicked nor signed in the last")], validate_choice=False)
    engaged_days = StringField("days", default="90", render_kw={"type": "number", "min": 1, "max": 3650})
    postal_prefixes = StringField("Postal code starts with", validators=[Length(max=500)],
                                  description="One or several, separated by commas, like 10001, 112.")
    has_first_name = SelectField("First name", choices=[
        SelectChoice("", "Anyone"), SelectChoice("yes", "Has a first name"),
        SelectChoice("no", "Has no first name")], validate_choice=False)
    include_acted = BooleanField("Also send to those who already signed every action in this alert")
    save_as = StringField("Save these rules as", description="Optional: a name to reuse this audience.",
                          validators=[Length(max=120)])
    # A/B subject test (optional)
    subject_b = StringField("Subject B", validators=[Length(max=200)],
                            description="Fill in to test two subjects on a sample before the rest.")
    from_name_a = StringField("From name A (optional)", validators=[Length(max=80)])
    from_name_b = StringField("From name B (optional)", validators=[Length(max=80)])
    ab_sample = StringField("Sample per subject, %", default="10",
                            render_kw={"type": "number", "min": 1, "max": 33})
    ab_wait = StringField("Pick the winner after, minutes", default="240",
                          render_kw={"type": "number", "min": 1})
    ab_metric = SelectField("Winner by", choices=[SelectChoice("clicks", "Click rate"),
                                                  SelectChoice("signatures", "Signature rate")],
                          default="clicks", validate_choice=False)


class ReminderForm(FlaskForm):
    subject = StringField("Subject", validators=[DataRequired("The subject is required."), Length(max=200)])
    minus_clickers = BooleanField("Also leave out those who clicked but did not sign")


class SendTestForm(FlaskForm):
    to = EmailField("Send a test to", validators=[DataRequired("Enter an address."), ADDRESS])
    in_spanish = BooleanField("As Spanish readers get it")


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


class SignerImportForm(FlaskForm):
    file = FileField("CSV of signers", validators=[FileRequired("Choose a CSV file to import.")],
                     description="UTF-8 CSV with a header row naming at least email; name, first name, "
                     "last name, zip or postal code, comment and date are used when present.")


class ActionImageForm(FlaskForm):
    file = FileField("Image", validators=[FileRequired("Choose an image to upload.")],
                     render_kw={"accept": "image/jpeg,image/png,image/webp,image/gif"},
                     description="JPEG, PNG, WebP or GIF (its first frame), up to 10 MB. It is cropped to "
                     "fill 1200x630 (the middle is kept), and stored without its metadata.")
    alt = TextAreaField(
        "Alt text",
        validators=[DataRequired("Describe the image for people who cannot see it."), Length(max=300)],
        render_kw={"maxlength": 300, "rows": 2},
        description="What the image shows, for people who cannot see it (at most 300 characters).")


ROLE_CHOICES = [SelectChoice(role.value, f"{role.value.capitalize()}: {DESCRIPTIONS[role]}")
                for role in ROLES]


class InviteForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter their email address."), ADDRESS,
                                            Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES, default=DEFAULT_ROLE.value)


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class NewPasswordForm(FlaskForm):
    """A password chosen twice, as a browser's password manager expects it."""

    password = PasswordField(
        "New password", validators=[DataRequired("Enter a password.")],
        description="At least 12 characters; a few unrelated words make a good one.",
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        "New password again", validators=[DataRequired("Enter the password again."),
                                          EqualTo("password", "The two passwords differ.")],
        render_kw={"autocomplete": "new-password"},
    )


class PasswordChangeForm(NewPasswordForm):
    current = PasswordField(
        "Current password", validators=[DataRequired("Enter your current password.")],
        render_kw={"autocomplete": "current-password"},
    )


class ApproveForm(FlaskForm):
    """The approval of what the page showed: its digest comes back, so a change since is refused."""

    digest = HiddenField(validators=[DataRequired("The page was incomplete; load it again.")])
