"""The REST API's endpoints (`/api/v1/`): thin views over the domain functions.

Every view is reached only with a bearer token of the scope its method needs (see `auth`);
writes commit with a row in `api_writes` naming the token, in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, NoReturn

import sqlalchemy as sa
from flask import Response, current_app, g, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from flask_smorest import Blueprint
from flask_smorest import abort as smorest_abort
from limits import RateLimitItem, parse_many
from werkzeug.exceptions import TooManyRequests, Unauthorized

from ... import apitokens, audit
from ...actions import signing
from ...audiences import rules as audience_rules
from ...audit import Actor
from ...blasts import progress
from ...blasts.state import BlastError
from ...extensions import db, limiter
from ...models import Action, ActionTarget, Alert, Signature, Subscriber, email_key
from ...reports.alert_report import report as alert_report
from ...subscribers import fields as field_defs
from ...subscribers import people, privacy, subscriptions
from . import schemas
from .problems import problem

blp = Blueprint("api", __name__, url_prefix="/api/v1",
                description="Subscribers, actions and signatures, alerts and audiences.")

# Methods that only read; a POST that only reads (counting an audience) says so here.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_ENDPOINTS = frozenset({"api.count_audience"})
# Endpoints that start or steer a send need `send`, not `write`, when the API has any.
SEND_ENDPOINTS: frozenset[str] = frozenset()
REALM = 'Bearer realm="api"'
# Ids are INTEGER columns (PostgreSQL's int4): a larger one in a path is a 404, not a 500.
MAX_ID = schemas.MAX_ID  # the id columns end there (models.base)


def abort(code: int, *, message: str, messages: dict[str, list[str]] | None = None) -> NoReturn:
    """An error the problem handler answers with (`messages` become its `errors`)."""
    smorest_abort(code, message=message, **({"messages": messages} if messages else {}))
    raise AssertionError("unreachable: abort raises")


# -- the gate: a token, its scope, its rate limit -----------------------------------------


class TokenRefused(Unauthorized):
    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), ("WWW-Authenticate", REALM)]


@lru_cache(maxsize=8)
def _limits(spec: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(spec))


def _rate_limit(caller: apitokens.Caller) -> None:
    """API_RATE_LIMIT per token, counted in the app's limiter storage (as the signing path's)."""
    if not limiter.enabled:
        return
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX", "")
    key = f"api-token:{caller.id}"
    for item in _limits(current_app.config["API_RATE_LIMIT"]):
        if not limiter.hit(item, prefix, key):
            reset = limiter.reset_at(item, prefix, key)
            raise TooManyRequests(
                f"This token made more than {item} requests; wait and try again.",
                retry_after=max(1, int(reset - time.time())))


def scope_needed(method: str, endpoint: str | None) -> str:
    """Which scope a request needs (read, send or write): stated here, checked in `authenticate`."""
    if method in READ_METHODS or endpoint in READ_ENDPOINTS:
        return "read"
    return "send" if endpoint in SEND_ENDPOINTS else "write"


@blp.before_request
def authenticate() -> ResponseReturnValue | None:
    """Bearer token first (401), then scope (403), then the token's rate limit (429)."""
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise TokenRefused("Send `Authorization: Bearer TOKEN` with a token staff made at /staff/api-tokens.")
    caller = apitokens.authenticate(raw)
    if caller is None:
        raise TokenRefused("That token is unknown or revoked.")
    needed = scope_needed(request.method, request.endpoint)
    if needed not in caller.scopes:
        return problem(403, "Forbidden", f"This token lacks the `{needed}` scope.")
    _rate_limit(caller)
    if apitokens.needs_touch(caller):
        # The token's last use, at most once a minute: the one write a GET makes, and it
        # is about the token, not the data (committed now, before the view runs).
        apitokens.touch(caller)
        db.session.commit()
    g.api_caller = caller
    return None


def _caller() -> apitokens.Caller:
    caller: apitokens.Caller = g.api_caller
    return caller


def _client() -> subscriptions.Request:
    return subscriptions.Request(ip=request.remote_addr, user_agent=request.user_agent.string,
                                 source=f"api-token:{_caller().id}")


def _commit_write(action: str, kind: str, object_id: object) -> None:
    """Every API write ends here: the token's record of writes and the audit trail, then the commit."""
    caller = _caller()
    apitokens.record_write(caller, method=request.method, path=request.path, kind=kind,
                           object_id=object_id, ip=request.remote_addr)
    audit.record(Actor("api", f"api:{caller.name}", request.remote_addr), action,
                 f"{kind} {object_id}" if object_id is not None else None, token=caller.id)
    db.session.commit()


# -- paging: keyset on the primary key (`after`: the last id of the page before) ----------


def _plain(row: Any) -> dict[str, Any]:
    """A row as the page's JSON gives it (datetimes in ISO 8601, as the schema's dump would)."""
    mapping = row if isinstance(row, dict) else row._mapping
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in mapping.items()}


def _page(query: sa.Select, id_column: Any, args: dict, endpoint: str,
          convert: Callable[[Sequence[Any]], Sequence[Any]] = list, **values: Any) -> Response:
    """One page of `query` ordered by `id_column`, from `after`, and the next page's URL.

    The rows are the schema's fields by name and go out as JSON without a marshmallow dump
    (half a page's time at 100 rows); Schemathesis holds the answer to the schema."""
    limit = args["limit"]
    rows = db.session.execute(
        query.where(id_column > args.get("after", 0)).order_by(id_column).limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_url = None
    if more:
        params = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in args.items()
                  if k != "after" and v is not None}
        next_url = url_for(endpoint, **values, **params, after=rows[-1].id, _external=True)
    return jsonify(items=[_plain(row) for row in convert(rows)], next=next_url)


# -- subscribers ------------------------------------------------------------------------------

_SUB = Subscriber.__table__
_SUBSCRIBER_COLUMNS = (_SUB.c.id, _SUB.c.email, _SUB.c.status, _SUB.c.first_name, _SUB.c.last_name,
                       _SUB.c.postal_code, _SUB.c.phone, _SUB.c.language, _SUB.c.source, _SUB.c.created_at,
                       _SUB.c.confirmed_at, _SUB.c.unsubscribed_at)


@blp.route("/subscribers", methods=["GET"])
@blp.arguments(schemas.SubscriberQuery, location="query", as_kwargs=False)
@blp.response(200, schemas.SubscriberPage)
def list_subscribers(args: dict) -> Response:
    """Subscribers by id, filtered; a page is an index range scan on the primary key."""
    query = sa.select(*_SUBSCRIBER_COLUMNS)
    if args.get("status"):
        query = query.where(_SUB.c.status == args["status"])
    if args.get("source"):
        query = query.where(_SUB.c.source == args["source"])
    if args.get("email"):
        query = query.where(_SUB.c.email_key == email_key(args["email"]))
    if args.get("created_after"):
        query = query.where(_SUB.c.created_at >= args["created_after"])
    if args.get("created_before"):
        query = query.where(_SUB.c.created_at < args["created_before"])
    return _page(query, _SUB.c.id, args, "api.list_subscribers", convert=_with_fields)


def _custom_out(values: dict[str, list[str]], defs: dict[str, field_defs.FieldDef]) -> dict[str, Any]:
    """Custom fields as the API gives them: a list for several choices (in the field's order),
    true for a ticked checkbox, else the one value as a string."""
    out: dict[str, Any] = {}
    for key, vals in values.items():
        fdef = defs.get(key)
        if fdef is not None and fdef.kind == "choices":
            order = {c: i for i, c in enumerate(fdef.choices)}
            out[key] = sorted(vals, key=lambda v: (order.get(v, len(order)), v))
        else:
            out[key] = True if fdef is not None and fdef.kind == "checkbox" else vals[0]
    return out


def _with_fields(rows: Sequence[Any]) -> list[dict[str, Any]]:
    defs = {f.key: f for f in field_defs.custom()}
    values = field_defs.values_for([row.id for row in rows])
    return [{**row._mapping, "fields": _custom_out(values.get(row.id, {}), defs)} for row in rows]


def _out(sub: Subscriber) -> dict[str, Any]:
    """One subscriber as SubscriberOut dumps it, with their custom fields."""
    data = {column.name: getattr(sub, column.name) for column in _SUBSCRIBER_COLUMNS}
    defs = {f.key: f for f in field_defs.custom()}
    data["fields"] = _custom_out(field_defs.values_for([sub.id]).get(sub.id, {}), defs)
    return data


def _subscriber_or_404(subscriber_id: int) -> Subscriber:
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None:
        abort(404, message=f"There is no subscriber {subscriber_id} (never, or erased).")
    return sub


def _profile(data: dict) -> tuple[dict[str, str | None], dict[str, list[str]]]:
    """The profile fields and the custom fields' values given, checked; one 422 names every
    field at fault (a custom one as `fields.<key>`)."""
    errors: dict[str, str] = {}
    profile: dict[str, str | None] = {}
    values: dict[str, list[str]] = {}
    try:
        profile = people.clean_profile({k: data[k] for k in people.PROFILE_FIELDS if k in data})
    except people.ProfileError as exc:
        errors.update(exc.errors)
    try:
        values = field_defs.clean_values(data.get("fields_") or {})
    except field_defs.FieldError as exc:
        errors.update({f"fields.{key}": message for key, message in exc.errors.items()})
    if errors:
        abort(422, message="Some fields were not accepted: " + ", ".join(sorted(errors)) + ".",
              messages={k: [v] for k, v in errors.items()})
    return profile, values


@blp.route("/subscribers", methods=["POST"])
@blp.arguments(schemas.SubscriberCreate)
@blp.response(201, schemas.SubscriberOut)
@blp.alt_response(200, schema=schemas.SubscriberOut, description="The address was on the list already")
def create_subscriber(data: dict) -> tuple[dict[str, Any], int]:
    """Add a subscriber: double opt-in by default (`confirm-first`), or `documented` consent."""
    profile, values = _profile(data)
    if data["welcome"] and data["consent"] != "documented":
        message = "welcome is for documented consent: people who confirm first are welcomed when they confirm"
        abort(422, message=message, messages={"welcome": [message]})
    try:
        email = subscriptions.normalize_email(data["email"])
    except subscriptions.InvalidEmail as exc:
        abort(422, message=str(exc), messages={"email": [str(exc)]})
    client = _client()
    req = subscriptions.Request(ip=client.ip, user_agent=client.user_agent,
                                source=data.get("source") or "api")
    try:
        added = people.add(email, profile, consent=data["consent"], req=req, vouched_by=client.source,
                           send_welcome=data["welcome"])
    except people.Suppressed:
        abort(409, message="That address is suppressed (erased, bounced or complained): "
                           "it is never added again.")
    except people.UnsubscribedThemselves:
        abort(409, message="That person unsubscribed; only their own confirmation brings them back "
                           "(send consent `confirm-first` to mail them a link).")
    # An address on the list already gains only the custom fields it had none of, as its profile does.
    field_defs.set_values(added.subscriber.id, values, only_empty=not added.created)
    _commit_write("subscriber.add", "subscriber", added.subscriber.id)
    return _out(added.subscriber), 201 if added.created else 200


@blp.route(f"/subscribers/<int(max={MAX_ID}):subscriber_id>", methods=["GET"])
@blp.etag
@blp.response(200, schemas.SubscriberOut)
def get_subscriber(subscriber_id: int) -> dict[str, Any]:
    """One subscriber; sends an ETag, and 304 for a matching If-None-Match."""
    return _out(_subscriber_or_404(subscriber_id))


@blp.route(f"/subscribers/<int(max={MAX_ID}):subscriber_id>", methods=["PATCH"])
@blp.arguments(schemas.Profile)
@blp.response(200, schemas.SubscriberOut)
def update_subscriber(data: dict, subscriber_id: int) -> dict[str, Any]:
    """Change a subscriber's name, postal code, phone, language or custom fields (those given;
    their address and consent stay)."""
    sub = _subscriber_or_404(subscriber_id)
    profile, values = _profile(data)
    people.update(sub, profile)
    field_defs.set_values(sub.id, values)
    _commit_write("subscriber.update", "subscriber", sub.id)
    return _out(sub)


@blp.route(f"/subscribers/<int(max={MAX_ID}):subscriber_id>/unsubscribe", methods=["POST"])
@blp.response(200, schemas.SubscriberOut)
def unsubscribe_subscriber(subscriber_id: int) -> dict[str, Any]:
    """Unsubscribe at once (idempotent); the consent history stays as proof."""
    _subscriber_or_404(subscriber_id)
    sub = subscriptions.unsubscribe(subscriber_id, _client(), via="api")
    assert sub is not None
    _commit_write("subscriber.unsubscribe", "subscriber", sub.id)
    return _out(sub)


@blp.route(f"/subscribers/<int(max={MAX_ID}):subscriber_id>", methods=["DELETE"])
@blp.response(204)
def erase_subscriber(subscriber_id: int) -> None:
    """Erase a subscriber's personal data (GDPR art. 17); the address stays suppressed by hash."""
    if not privacy.erase_subscriber(subscriber_id, by=f"api token {_caller().id} ({_caller().name})"):
        abort(404, message=f"There is no subscriber {subscriber_id} (never, or erased).")
    _commit_write("subscriber.erase", "subscriber", subscriber_id)


# -- actions and signatures -------------------------------------------------------------------


_ACT = Action.__table__
_ACTION_COLUMNS = (_ACT.c.id, _ACT.c.slug, _ACT.c.title, _ACT.c.summary, _ACT.c.kind, _ACT.c.url,
                   _ACT.c.is_open, _ACT.c.goal, _ACT.c.requires_confirmation, _ACT.c.created_at)


def _targets_of(action_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each action's targets; a letter's addresses only to a token that may write (the public
    page never shows them either), a call's numbers to all (its page shows them)."""
    with_email = "write" in _caller().scopes
    rows = db.session.scalars(sa.select(ActionTarget).where(ActionTarget.action_id.in_(action_ids))
                              .order_by(ActionTarget.action_id, ActionTarget.position, ActionTarget.id))
    out: dict[int, list[dict[str, Any]]] = {}
    for t in rows:
        item: dict[str, Any] = {"name": t.name, "title": t.title, "phone": t.phone,
                                "placeholder": t.placeholder}
        if with_email:
            item["email"] = t.email
        out.setdefault(t.action_id, []).append(item)
    return out


def _with_counts(rows: Sequence[Any]) -> list[dict]:
    counts = signing.counts_by_action()
    targets = _targets_of([row.id for row in rows])
    return [{**row._asdict(), "signatures": counts.get(row.id, 0), "targets": targets.get(row.id, [])}
            for row in rows]


@blp.route("/actions", methods=["GET"])
@blp.arguments(schemas.PageQuery, location="query", as_kwargs=False)
@blp.response(200, schemas.ActionPage)
def list_actions(args: dict) -> Response:
    """Every action (open or closed), with its kind, targets and counted signatures."""
    return _page(sa.select(*_ACTION_COLUMNS), _ACT.c.id, args, "api.list_actions", convert=_with_counts)


@blp.route("/actions/<slug>", methods=["GET"])
@blp.response(200, schemas.ActionOut)
def get_action(slug: str) -> dict[str, Any]:
    """One action (open or closed) by its slug."""
    row = db.session.execute(sa.select(*_ACTION_COLUMNS).where(_ACT.c.slug == slug)).first()
    if row is None:
        abort(404, message=f"There is no action {slug!r}.")
    return _with_counts([row])[0]


def _action_or_404(slug: str) -> Any:
    action = signing.signable(slug)
    if action is None:
        abort(404, message=f"There is no action {slug!r}.")
    return action


_SIG = Signature.__table__


@blp.route("/actions/<slug>/signatures", methods=["GET"])
@blp.arguments(schemas.PageQuery, location="query", as_kwargs=False)
@blp.response(200, schemas.SignaturePage)
def list_signatures(args: dict, slug: str) -> Response:
    """An action's signatures by id (erased signers' rows are anonymous and left out)."""
    action = _action_or_404(slug)
    query = sa.select(_SIG.c.id, _SIG.c.name, _SIG.c.email, _SIG.c.postal_code, _SIG.c.comment,
                      _SIG.c.source, _SIG.c.source_code, _SIG.c.created_at, _SIG.c.confirmed_at,
                      _SIG.c.confirmed_at.is_not(None).label("counted")).where(
        _SIG.c.action_id == action.id, _SIG.c.email != "")
    return _page(query, _SIG.c.id, args, "api.list_signatures", slug=slug)


@blp.route("/actions/<slug>/signatures", methods=["POST"])
@blp.arguments(schemas.SignatureCreate)
@blp.response(201, schemas.SignatureOut)
@blp.alt_response(200, schema=schemas.SignatureOut, description="This address had signed already")
def create_signature(data: dict, slug: str) -> tuple[Any, int]:
    """Record a signature taken elsewhere: one per action and address, as on the action's page."""
    action = _action_or_404(slug)
    entry = signing.Entry(name=data["name"], email=data["email"], postal_code=data.get("postal_code") or "",
                          comment=data.get("comment") or "", opt_in=data["opt_in"])
    client = _client()
    try:
        outcome = signing.sign(action, entry, signer=None,
                               where=signing.Attribution(source="api", source_code=data.get("source")),
                               request=subscriptions.Request(ip=client.ip, user_agent=client.user_agent,
                                                             source=data.get("source") or "api"))
    except signing.ActionClosed:
        abort(409, message=f"The action {slug!r} is closed or links elsewhere; it takes no signatures.")
    except signing.SignError as exc:
        abort(422, message=str(exc), messages={exc.field: [str(exc)]})
    _commit_write("signature.create", "signature", outcome.signature_id)
    row = db.session.execute(
        sa.select(_SIG.c.id, _SIG.c.name, _SIG.c.email, _SIG.c.postal_code, _SIG.c.comment, _SIG.c.source,
                  _SIG.c.source_code, _SIG.c.created_at, _SIG.c.confirmed_at,
                  _SIG.c.confirmed_at.is_not(None).label("counted"))
        .where(_SIG.c.id == outcome.signature_id)).one()
    return row, 201 if outcome.new else 200


# -- alerts and audiences ----------------------------------------------------------------------


@blp.route("/alerts", methods=["GET"])
@blp.arguments(schemas.PageQuery, location="query", as_kwargs=False)
@blp.response(200, schemas.AlertPage)
def list_alerts(args: dict) -> Response:
    """Alerts by id, with their state."""
    a = Alert.__table__
    query = sa.select(a.c.id, a.c.subject, a.c.state, a.c.created_at, a.c.scheduled_for, a.c.started_at,
                      a.c.finished_at)
    return _page(query, a.c.id, args, "api.list_alerts")


OPEN_OBJECT = {"type": "object", "additionalProperties": True}


@blp.route(f"/alerts/<int(max={MAX_ID}):alert_id>", methods=["GET"])
@blp.doc(responses={"200": {"description": "The status object (as `alerts alert status --json`)",
                            "content": {"application/json": {"schema": {
                                **OPEN_OBJECT, "required": ["id", "state", "total", "done"],
                                "properties": {"id": {"type": "integer"}, "state": {"type": "string"},
                                               "total": {"type": "integer"}, "done": {"type": "integer"},
                                               "percent": {"type": "number"}}}}}}})
@blp.response(200)
def alert_status(alert_id: int) -> dict:
    """An alert's state and delivery counts."""
    try:
        return progress.status(alert_id)
    except BlastError:
        abort(404, message=f"There is no alert {alert_id}.")


@blp.route(f"/alerts/<int(max={MAX_ID}):alert_id>/report", methods=["GET"])
@blp.doc(responses={"200": {"description": "The report object (as `alerts alert report --json`)",
                            "content": {"application/json": {"schema": OPEN_OBJECT}}}})
@blp.response(200)
def alert_report_view(alert_id: int) -> dict:
    """Did the alert move people: delivery, clicks, signatures per action."""
    data = alert_report(alert_id)
    if data is None:
        abort(404, message=f"There is no alert {alert_id}.")
    return data


@blp.route("/audiences/count", methods=["POST"])
@blp.arguments(schemas.AudienceRules)
@blp.response(200, schemas.AudienceCount)
def count_audience(data: dict) -> dict:
    """How many subscribers a set of audience rules selects now (read scope: it changes nothing)."""
    try:
        rules = audience_rules.parse(data)
    except audience_rules.AudienceError as exc:
        abort(422, message=str(exc), messages={"rules": [str(exc)]})
    size = audience_rules.size(rules, [])
    return {"count": size, "description": audience_rules.describe(rules, [])}
