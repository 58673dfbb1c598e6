"""An action's public pages: read and sign it, the thank-you page, confirming a flagged signature.

GET pages change nothing; only `POST /actions/<slug>/sign`, a call's report (`POST
/actions/<slug>/call`) and the POST of a signature's confirmation link write. A `?r=`
reference from an alert greets its subscriber by masked address and signs for them in one
press; it is never shown, logged or passed on in a Referer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Response, abort, current_app, redirect, render_template, request, url_for

from .. import actions, i18n
from ..actions import calls, images, shares, signing, targets
from ..actions.references import read_reference
from ..embeds.sources import clean_source
from ..extensions import csrf, db, limiter
from ..models import Action
from . import ratelimits
from .client import client_request

log = logging.getLogger(__name__)

# A page that may carry a reference: not cached, not indexed, its URL never sent onwards.
PRIVATE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
# The actions signed in this browser, so that the thank-you page suggests one not signed yet.
# A plain cookie (ids only, gone when the browser closes): no session to re-sign per signature.
SIGNED_COOKIE = "signed"
SIGNED_KEPT = 50


def signed_here() -> frozenset[int]:
    """The action ids this browser signed (what the cookie says; nonsense in it is ignored)."""
    raw = request.cookies.get(SIGNED_COOKIE, "")
    return frozenset(int(x) for x in raw.split(".")[:SIGNED_KEPT] if x.isdigit() and len(x) < 10)


def _remember_signed(response, ids) -> None:
    kept = sorted(ids)[-SIGNED_KEPT:]
    response.set_cookie(SIGNED_COOKIE, ".".join(map(str, kept)), path="/actions", httponly=True,
                        samesite="Lax", secure=request.is_secure)


def _action_or_404(slug: str) -> Action:
    item = actions.by_slug(slug)
    if item is None:
        abort(404)
    return item


def _page_source(value: str | None) -> str | None:
    return value if value in signing.PAGE_SOURCES else None


def _render(action: Action, *, signer=None, token: str = "", not_me: bool = False, src: str | None = None,
            entry: signing.Entry | None = None, error: signing.SignError | None = None, status: int = 200,
            source_code: str | None = None, report: calls.Report | None = None):
    count = signing.count(action.id)
    goal = signing.goal_for(action, count)
    body = render_template(
        "action.html", action=action, signer=None if not_me else signer,
        token=token if signer else "", not_me=not_me and signer is not None, src=src or "",
        source_code=source_code or "", share=share_links(action),
        entry=entry or signing.Entry(), error=error, count=count, goal=goal,
        percent=min(100, round(100 * count / goal)) if goal else 0,
        **(_call_context(action, report) if action.kind == "call" else {}),
    )
    return body, status, PRIVATE_HEADERS


def action(slug: str):
    item = _action_or_404(slug)
    token = request.args.get("r", "")
    signer = signing.signer_for(token) if token else None
    return _render(item, signer=signer, token=token, not_me=request.args.get("not_me") == "1",
                   src=_page_source(request.args.get("src")),
                   source_code=clean_source(request.args.get("source")))


def _address_key() -> str:
    """Per address: the typed one, or the delivery a reference names (no database read)."""
    ref = read_reference(request.form.get("r")) if request.form.get("not_me") != "1" else None
    if ref is not None:
        return f"sign-ref:{ref.delivery_id}"
    return "sign-addr:" + signing.email_key(request.form.get("email") or "")[:254]


def _check_rate_limits() -> None:
    """Per IP (SIGN_RATE_LIMIT) and per address (SIGN_ADDRESS_RATE_LIMIT), counted in the app's
    limiter storage in one round trip (`ratelimits.check`); a breach is the usual 429 page.

    Counted here rather than through two `@limiter.limit` decorators: the decorators' own work
    was about 0.4 ms of CPU per signature each, a third of the signing path (measured A/B).
    """
    cfg = current_app.config
    ratelimits.check(((cfg["SIGN_RATE_LIMIT"], f"sign-ip:{request.remote_addr}"),
                      (cfg["SIGN_ADDRESS_RATE_LIMIT"], _address_key())))


@limiter.counts_itself  # limited per IP and per address in the view (`_check_rate_limits`)
def sign(slug: str):
    item = signing.signable(slug)  # a Row, not the ORM object: the hot path of a viral petition
    if item is None:
        abort(404)
    # The CSRF token was checked by CSRFProtect before this view ran (a bad one: a 400 page).
    _check_rate_limits()
    src = _page_source(request.form.get("src"))
    if (request.form.get("website") or "").strip():
        # A bot filled the honeypot: the usual answer, and nothing is written.
        log.info("honeypot filled on %s from %s", slug, request.remote_addr)
        return redirect(url_for("public.thanks", slug=item.slug), code=303)
    who = _who_acts(src, comment=request.form.get("comment", ""))
    try:
        outcome = signing.sign(item, who.entry, signer=who.signer, where=who.where, request=client_request())
    except signing.ActionClosed:
        db.session.rollback()
        return _render(_action_or_404(slug), status=409)
    except signing.SignError as exc:
        db.session.rollback()
        return _render(_action_or_404(slug), signer=who.referenced, token=who.token, not_me=who.not_me,
                       src=src, entry=who.entry, error=exc, status=400, source_code=who.code)
    db.session.commit()
    # The answer names nothing but the action: the thank-you page is the same for everyone.
    # (No session write either: re-signing the session cookie on every signature costs CPU a
    # viral petition has better use for.)
    return _acted(slug, item.id, who.signer, {} if outcome.counted else {"check": "1"})


@dataclass(frozen=True)
class _Acting:
    """Who is acting on a signing or call form: the alert's reference (if any), whether they
    said "not me", what they typed, and where they came from."""

    token: str
    not_me: bool
    referenced: signing.Signer | None
    signer: signing.Signer | None
    entry: signing.Entry
    code: str | None
    where: signing.Attribution


def _who_acts(src: str | None, comment: str = "") -> _Acting:
    form = request.form
    token = form.get("r", "")
    not_me = form.get("not_me") == "1"
    referenced = signing.signer_for(token) if token else None
    signer = None if not_me else referenced
    entry = signing.Entry(
        name=form.get("name", ""), email=form.get("email", ""), postal_code=form.get("postal_code", ""),
        comment=comment, opt_in=form.get("opt_in") in ("1", "y", "on", "true"),
        language=i18n.known(form.get("language")),
    )
    code = clean_source(form.get("source"))
    typed = None if signer is not None else entry.email
    where = signing.attribution(referenced, page_source=src, email=typed, source_code=code)
    return _Acting(token, not_me, referenced, signer, entry, code, where)


def _acted(slug: str, action_id: int, signer: signing.Signer | None, args: dict[str, Any]):
    """The 303 to the thank-you page, remembering in the browser what this person has done."""
    response = redirect(url_for("public.thanks", slug=slug, **args), code=303)
    done = signed_here() | {action_id}
    if signer is not None:  # the alert's reference proves who this is: what they signed before counts
        done |= signing.signed_action_ids(signer.email)
    _remember_signed(response, done)
    return response


def _call_context(action: Action, report: calls.Report | None) -> dict[str, Any]:
    """What a call's page shows besides the signing fields: the numbers (placeholders are
    shown to nobody), the answers to choose from, and what the caller had chosen."""
    return {"call_targets": targets.real_targets(action.id), "phone_shown": targets.phone_shown,
            "call_outcomes": calls.OUTCOME_LABELS, "outcome_field": calls.OUTCOME_FIELD.format,
            "report": report or calls.Report()}


@limiter.counts_itself  # limited per IP and per address in the view, as signing is
def call(slug: str):
    """A caller's report: how each call went, and who called (as the signing form asks)."""
    item = _action_or_404(slug)
    if item.kind != "call":
        abort(404)
    _check_rate_limits()
    src = _page_source(request.form.get("src"))
    if (request.form.get("website") or "").strip():
        log.info("honeypot filled on %s from %s", slug, request.remote_addr)
        return redirect(url_for("public.thanks", slug=item.slug, called="1"), code=303)
    who = _who_acts(src)
    report = calls.read_form(request.form)
    try:
        logged = calls.report_call(item, who.entry, report, signer=who.signer, where=who.where,
                                   request=client_request())
    except signing.ActionClosed:
        db.session.rollback()
        return _render(_action_or_404(slug), status=409)
    except signing.SignError as exc:
        db.session.rollback()
        return _render(_action_or_404(slug), signer=who.referenced, token=who.token, not_me=who.not_me,
                       src=src, entry=who.entry, error=exc, status=400, source_code=who.code, report=report)
    db.session.commit()
    return _acted(slug, item.id, who.signer,
                  {"called": "1"} if logged.outcome.counted else {"called": "1", "check": "1"})


def share_links(action: Action) -> dict[str, str]:
    """Where the share buttons go, in the page's language; each link says it was shared, and
    through which network (`?src=share&source=share-x`)."""
    return shares.links(action, actions.text_of(action, i18n.current()))


# The digest is in the URL: what it names never changes, so anyone may keep it for a year.
IMAGE_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable"}


def action_image(slug: str, digest: str, ext: str):
    """The action's share image, by the digest its page names: the upload, else a default
    card (of the title in any of its languages). Any other digest is a 404."""
    item = _action_or_404(slug)
    row = images.stored(item.id)
    picture: images.Picture | None = None
    if row is not None:
        if row.digest == digest:
            picture = images.Picture(row.data, row.content_type, row.digest)
    else:
        org = current_app.config["ORG_NAME"]
        for code in i18n.languages():
            title = actions.text_of(item, code).title
            if images.card_digest(item.slug, title, org) == digest:
                picture = images.card(item.slug, title, org)
                break
    if picture is None or picture.ext != ext:
        abort(404)
    response = Response(picture.data, mimetype=picture.content_type, headers=IMAGE_HEADERS)
    response.set_etag(picture.digest)
    return response.make_conditional(request)


def thanks(slug: str):
    item = _action_or_404(slug)
    called = item.kind == "call" and request.args.get("called") == "1"
    return render_template(
        "action_thanks.html", action=item, share=share_links(item),
        next_action=actions.next_open_action(item, signed_here()), check=request.args.get("check") == "1",
        called=called, calls_logged=calls.calls_logged(item.id) if called else 0,
    ), 200, {"Cache-Control": "no-store"}


@csrf.exempt  # the signed token is the credential, as for the list's own confirmation
def confirm_signature(token: str):
    try:
        signature_id = signing.read_confirm_token(token)
    except signing.ConfirmLinkError as exc:
        return render_template("signature_link_error.html", reason=exc.reason), 400, PRIVATE_HEADERS
    if request.method == "GET":
        if signing.confirmable(signature_id) is None:  # erased: a dead link, like any invalid one
            return render_template("signature_link_error.html", reason="invalid"), 400, PRIVATE_HEADERS
        return render_template("signature_confirm.html", token=token, done=False,
                               signature_id=signature_id), 200, PRIVATE_HEADERS
    signature = signing.confirm_signature(token)
    db.session.commit()
    if signature is None:
        return render_template("signature_link_error.html", reason="invalid"), 400, PRIVATE_HEADERS
    action = db.session.get(Action, signature.action_id)
    return render_template("signature_confirm.html", token=token, done=True, action=action), 200, \
        PRIVATE_HEADERS
