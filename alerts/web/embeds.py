"""The forms placed on other websites: `/embed/signup`, `/embed/actions/<slug>` and `/embed.js`.

They work with third-party cookies blocked: no session and no cookie. A POST must come from
this site's own pages or from an EMBED_ORIGINS site (Origin, else Referer), carry a signed form
token made for that form within EMBED_FORM_MAX_AGE, and a solved proof-of-work challenge;
the honeypot and the site's rate limits apply as on the site's own forms. The answer (thanks,
or the form again with what was typed and what to fix) is shown in place, inside the frame.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import abort, current_app, make_response, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import actions, i18n
from ..actions import signing
from ..embeds import formtokens, origins, pow
from ..embeds.sources import clean_source
from ..extensions import csrf, db, limiter
from ..models import Action
from ..subscribers import confirmations, fields, signup_form, subscriptions
from .action_pages import _check_rate_limits
from .client import client_request
from .public import _subscribe_rate_limit
from .security import framable

log = logging.getLogger(__name__)

THEMES = ("light", "dark")
_ACCENT = re.compile(r"[0-9a-fA-F]{6}")
_FRAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
# What the visitor reads when a check refuses a post; the form is shown again with their words.
EXPIRED = _l("This form was open too long. Please press the button again.")
NOT_VERIFIED = _l("We could not check that this came from a browser. "
                  "Please wait a moment and press the button again.")


def _look() -> dict[str, Any]:
    """The frame's look and its id in embed.js (query on GET, fields on POST); bad values are ignored."""
    values = request.form if request.method == "POST" else request.args
    theme = values.get("theme", "")
    accent = values.get("accent", "")
    frame = values.get("frame", "")
    return {"theme": theme if theme in THEMES else "light",
            "accent": accent if _ACCENT.fullmatch(accent) else "",
            "frame": frame if _FRAME.fullmatch(frame) else "",
            "source_code": clean_source(values.get("source")) or ""}


def _form_bits(purpose: str) -> dict[str, Any]:
    cfg = current_app.config
    return {"form_token": formtokens.make_form_token(cfg, purpose), "challenge": pow.challenge(cfg),
            "embed_origins": cfg["EMBED_ORIGINS"]}


def _refused(message: str, status: int):
    return render_template("embed/refused.html", message=message, **_look()), status, NO_STORE


def _checks(purpose: str) -> str | None:
    """None when the post may count, else what to tell the visitor (the form is shown again).
    A foreign origin is refused outright (403)."""
    cfg = current_app.config
    if not origins.may_post(cfg, request.headers.get("Origin"), request.headers.get("Referer")):
        abort(make_response(*_refused(_("This form can only be sent from the pages it was placed on. "
                                        "The site that showed it is not one this service works with."), 403)))
    try:
        formtokens.check_form_token(cfg, request.form.get("form_token"), purpose)
    except formtokens.FormTokenError as exc:
        log.info("embed form token refused (%s) for %s", exc.reason, purpose)
        return str(EXPIRED)
    try:
        pow.verify(cfg, request.form.get("altcha"))
    except pow.PowError as exc:
        log.info("embed proof of work refused (%s) for %s", exc.reason, purpose)
        return str(NOT_VERIFIED)
    return None


# -- the signup form ------------------------------------------------------------------------


def _signup_page(*, email: str = "", error: str | None = None, done: bool = False, status: int = 200,
                 entry: signup_form.Entry | None = None):
    bits = {} if done else _form_bits(formtokens.purpose_for(None))
    entry = entry or signup_form.Entry()
    return render_template("embed/signup.html", email=email, error=error, done=done,
                           signup_fields=[] if done else fields.signup_form_fields(),
                           typed=entry.typed, errors=entry.errors, **bits, **_look()), status, NO_STORE


@framable
def signup():
    return _signup_page()


@framable
@csrf.exempt  # no cookie reaches a framed form: the signed form token and the Origin check stand in
@limiter.limit(_subscribe_rate_limit)
def signup_post():
    typed = (request.form.get("email") or "").strip()[:254]
    entry = signup_form.read(request.form.getlist)
    problem = _checks(formtokens.purpose_for(None))
    if problem:
        return _signup_page(email=typed, error=problem, status=400,
                            entry=signup_form.Entry(typed=entry.typed))
    if (request.form.get("website") or "").strip():
        log.info("honeypot filled on the embedded signup from %s", request.remote_addr)
        return _signup_page(email=typed, done=True)
    error = None
    try:
        email = subscriptions.normalize_email(typed)
    except subscriptions.InvalidEmail as exc:
        error = signup_form.email_message(exc)
    if error or entry.errors:
        return _signup_page(email=typed, error=error, status=400, entry=entry)
    code = clean_source(request.form.get("source"))
    attempt_id = subscriptions.record_attempt(email, client_request(source=code or "embed"), entry.profile)
    confirmations.queue_signup(attempt_id)
    db.session.commit()
    return _signup_page(email=email, done=True)


# -- an action's signing form ---------------------------------------------------------------


def _action_or_404(slug: str) -> Action:
    item = actions.by_slug(slug)
    if item is None:
        abort(404)
    return item


def _action_page(action: Action, *, entry: signing.Entry | None = None,
                 error: signing.SignError | None = None, notice: str | None = None, done: bool = False,
                 counted: bool = True, status: int = 200):
    count = signing.count(action.id)
    open_here = action.is_open and not action.url
    bits = _form_bits(formtokens.purpose_for(action.slug)) if open_here and not done else {}
    return render_template("embed/action.html", action=action, entry=entry or signing.Entry(), error=error,
                           notice=notice, done=done, counted=counted, count=count, open_here=open_here,
                           **bits, **_look()), status, NO_STORE


@framable
def action(slug: str):
    return _action_page(_action_or_404(slug))


def _entry() -> signing.Entry:
    return signing.Entry(
        name=request.form.get("name", ""), email=request.form.get("email", ""),
        postal_code=request.form.get("postal_code", ""), comment=request.form.get("comment", ""),
        opt_in=request.form.get("opt_in") in ("1", "y", "on", "true"),
        language=i18n.known(request.form.get("language")),
    )


@framable
@csrf.exempt  # as signup_post
@limiter.exempt  # limited per IP and per address as the site's own signing form is
def action_post(slug: str):
    item = signing.signable(slug)
    if item is None:
        abort(404)
    _check_rate_limits()
    entry = _entry()
    problem = _checks(formtokens.purpose_for(slug))
    if problem:
        return _action_page(_action_or_404(slug), entry=entry, notice=problem, status=400)
    if (request.form.get("website") or "").strip():
        log.info("honeypot filled on the embedded %s from %s", slug, request.remote_addr)
        return _action_page(_action_or_404(slug), done=True)
    where = signing.Attribution(signing.EMBED, source_code=clean_source(request.form.get("source")))
    try:
        outcome = signing.sign(item, entry, signer=None, where=where, request=client_request())
    except signing.ActionClosed:
        db.session.rollback()
        return _action_page(_action_or_404(slug), status=409)
    except signing.SignError as exc:
        db.session.rollback()
        return _action_page(_action_or_404(slug), entry=entry, error=exc, status=400)
    db.session.commit()
    return _action_page(_action_or_404(slug), done=True, counted=outcome.counted)


# -- the script a site includes ---------------------------------------------------------------


def embed_js():
    """One `<script>` tag places a form: the script knows this site's address, so it checks
    the frames' height messages come from here."""
    base = current_app.config["BASE_URL"]
    titles = {}
    for code in i18n.languages():
        with i18n.in_language(code):
            titles[code] = {"action": _("Sign the petition"), "signup": _("Sign up for action alerts")}
    body = render_template("embed/embed.js", base=base, origin=origins.own_origin(current_app.config),
                           languages=i18n.languages(), titles=titles)
    return body, 200, {"Content-Type": "text/javascript; charset=utf-8",
                       "Cache-Control": "public, max-age=300", "Cross-Origin-Resource-Policy": "cross-origin"}
