"""What the API takes and gives, as marshmallow schemas (the OpenAPI document is built from them)."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from ...models import SubscriberStatus
from ...models.base import MAX_ID

SOURCE = validate.Regexp(r"^[A-Za-z0-9_.\-]{1,64}$",
                         error="letters, digits and -_. only, at most 64 characters")
MAX_LIMIT = 500
DEFAULT_LIMIT = 100


class Problem(Schema):
    """An error as RFC 9457 describes it, with `errors` naming each field not accepted."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class Strict(Schema):
    class Meta:
        unknown = RAISE  # a field we do not know is a 422 naming it, never dropped in silence


class PageQuery(Strict):
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(1, MAX_LIMIT),
                           metadata={"description": f"rows per page, 1 to {MAX_LIMIT}"})
    after = fields.Integer(validate=validate.Range(0, MAX_ID),
                           metadata={"description": "where the page starts (the last id of the page "
                                                    "before): follow each page's next URL"})


class SubscriberQuery(PageQuery):
    status = fields.String(validate=validate.OneOf([s.value for s in SubscriberStatus]))
    source = fields.String(validate=validate.Length(max=200))
    email = fields.String(validate=validate.Length(max=254), metadata={"description": "exact, any case"})
    created_after = fields.AwareDateTime(default_timezone=None,
                                         metadata={"description": "ISO 8601 with offset"})
    created_before = fields.AwareDateTime(default_timezone=None)


class SubscriberOut(Schema):
    id = fields.Integer(required=True)
    email = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf([s.value for s in SubscriberStatus]))
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    postal_code = fields.String(allow_none=True)
    phone = fields.String(allow_none=True, metadata={"description": "E.164, like +12125550100"})
    language = fields.String(allow_none=True)
    source = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    confirmed_at = fields.DateTime(allow_none=True)
    unsubscribed_at = fields.DateTime(allow_none=True)
    fields_ = fields.Dict(data_key="fields", attribute="fields", keys=fields.String(), values=fields.Raw(),
                          metadata={"description": "custom fields given, by key: a list of strings for "
                                                   "several choices, true for a ticked checkbox, "
                                                   "else a string"})


class Page(Schema):
    next = fields.String(required=True, allow_none=True,
                         metadata={"description": "the next page's URL, or null on the last page"})


class SubscriberPage(Page):
    items = fields.List(fields.Nested(SubscriberOut), required=True)


class Profile(Strict):
    first_name = fields.String(allow_none=True, validate=validate.Length(max=100))
    last_name = fields.String(allow_none=True, validate=validate.Length(max=100))
    postal_code = fields.String(allow_none=True, validate=validate.Length(max=20))
    phone = fields.String(allow_none=True, validate=validate.Length(max=40),
                          metadata={"description": "any way people write it; kept in E.164 "
                                                   "(without a country code, PHONE_REGION's is assumed)"})
    language = fields.String(allow_none=True, validate=validate.Length(max=16))
    fields_ = fields.Dict(data_key="fields", keys=fields.String(), values=fields.Raw(allow_none=True),
                          metadata={"description": "custom fields by key (staff define them): a string, "
                                                   "a number, true/false for a checkbox, a list of strings "
                                                   "for several choices; null or an empty list clears one; "
                                                   "a key no field has is refused"})


class SubscriberCreate(Profile):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254),
                          metadata={"format": "email"})
    source = fields.String(validate=SOURCE)
    consent = fields.String(load_default="confirm-first",
                            validate=validate.OneOf(["confirm-first", "documented"]),
                            metadata={"description": "confirm-first mails a confirmation; documented "
                                                     "records a consent you hold proof of"})
    welcome = fields.Boolean(load_default=False,
                             metadata={"description": "documented consent only: send the welcome email"})


class TargetOut(Schema):
    name = fields.String(required=True)
    title = fields.String(required=True)
    email = fields.String(allow_none=True, metadata={
        "description": "a letter's target's address: only to tokens with the write scope"})
    phone = fields.String(allow_none=True, metadata={"description": "a call's target's number (E.164)"})
    placeholder = fields.Boolean(required=True, metadata={
        "description": "a stand-in staff must replace: nothing is sent to it"})


class ActionOut(Schema):
    id = fields.Integer(required=True)
    slug = fields.String(required=True)
    title = fields.String(required=True)
    summary = fields.String(required=True)
    kind = fields.String(required=True)
    url = fields.String(allow_none=True)
    is_open = fields.Boolean(required=True)
    goal = fields.Integer(allow_none=True)
    requires_confirmation = fields.Boolean(required=True)
    signatures = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    targets = fields.List(fields.Nested(TargetOut), required=True, metadata={
        "description": "whom a letter is sent to or a call is made to (empty for petitions and pledges)"})


class ActionPage(Page):
    items = fields.List(fields.Nested(ActionOut), required=True)


class SignatureOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    email = fields.String(required=True)
    postal_code = fields.String(allow_none=True)
    comment = fields.String(allow_none=True)
    source = fields.String(required=True, metadata={"description": "the channel: api, alert, share, embed…"})
    source_code = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    confirmed_at = fields.DateTime(allow_none=True)
    counted = fields.Boolean(required=True)


class SignaturePage(Page):
    items = fields.List(fields.Nested(SignatureOut), required=True)


class SignatureCreate(Strict):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    postal_code = fields.String(allow_none=True, validate=validate.Length(max=20))
    comment = fields.String(allow_none=True)
    opt_in = fields.Boolean(load_default=False,
                            metadata={"description": "also join the list (double opt-in)"})
    source = fields.String(validate=SOURCE,
                           metadata={"description": "its source code (as ?source= on a page)"})


class AlertOut(Schema):
    id = fields.Integer(required=True)
    subject = fields.String(required=True)
    state = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    scheduled_for = fields.DateTime(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class AlertPage(Page):
    items = fields.List(fields.Nested(AlertOut), required=True)


class AudienceRules(Strict):
    only_signers_of = fields.List(fields.String())
    except_signers_of = fields.List(fields.String())
    joined_after = fields.String(allow_none=True, metadata={"description": "ISO date, inclusive"})
    joined_before = fields.String(allow_none=True, metadata={"description": "ISO date, exclusive"})
    source = fields.String(allow_none=True)
    engaged_days = fields.Integer(allow_none=True, metadata={"description": "clicked or signed within"})
    engaged = fields.Boolean()
    topics = fields.List(fields.String())
    postal_prefixes = fields.List(fields.String(), metadata={"description": "postal code starts with one"})
    has_first_name = fields.Boolean(allow_none=True)
    field_values = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), metadata={
        "description": "custom field key -> values, one of which the subscriber has (ticked checkbox: yes)"})
    languages = fields.List(fields.String(), metadata={
        "description": "reads one of these languages (LANGUAGES codes; none stored reads the default)"})
    only_writers = fields.Boolean(metadata={"description": "only those who signed a letter action"})
    only_callers = fields.Boolean(metadata={"description": "only those who logged a call to a target"})


class AudienceCount(Schema):
    count = fields.Integer(required=True)
    description = fields.String(required=True)
