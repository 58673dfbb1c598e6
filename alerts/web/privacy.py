"""The subscriber's own privacy pages, reached from the unsubscribe link in every email.

The unsubscribe token is the credential here too: it is signed, names one subscriber and,
as the contract wants for unsubscribe links, never expires. So whoever holds an email
of ours can download that subscriber's data or erase it, as they can unsubscribe them.
"""

from __future__ import annotations

import json

from flask import Response, render_template, request

from ..extensions import db
from ..models import Subscriber
from ..subscribers import privacy
from ..subscribers.tokens import TokenError, read_unsubscribe_token, subscriber_id_for_key
from .forms import ButtonForm

PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
}


class _Forged(Exception):
    pass


def _subscriber_id(token: str) -> int | None:
    """The subscriber the link is for; None when erased (the link died with them)."""
    try:
        return subscriber_id_for_key(read_unsubscribe_token(token))
    except TokenError as exc:
        raise _Forged from exc


def _bad_link():
    return render_template("token_error.html", reason="invalid", kind="unsubscribe"), 400, PRIVATE_HEADERS


def _gone():
    """The subscriber was erased (or never existed): say so, without saying which."""
    return render_template("privacy_gone.html"), 404, PRIVATE_HEADERS


def data(token: str):
    try:
        sub_id = _subscriber_id(token)
    except _Forged:
        return _bad_link()
    payload = privacy.export_subscriber_data(sub_id) if sub_id is not None else None
    if payload is None:
        return _gone()
    body = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    headers = dict(PRIVATE_HEADERS)
    headers["Content-Disposition"] = 'attachment; filename="my-action-alerts-data.json"'
    return Response(body, mimetype="application/json", headers=headers)


def erase(token: str):
    try:
        sub_id = _subscriber_id(token)
    except _Forged:
        return _bad_link()
    form = ButtonForm()
    sub = db.session.get(Subscriber, sub_id) if sub_id is not None else None
    if request.method == "POST" and form.validate_on_submit():
        if sub is not None:
            privacy.erase_subscriber(sub.id, by="subscriber")
            db.session.commit()
        # Erasing twice (a double click, the back button) ends on the same page.
        return render_template("privacy_erased.html"), 200, PRIVATE_HEADERS
    if sub is None:
        return _gone()
    status = 400 if form.is_submitted() else 200
    return render_template("privacy_erase.html", form=form, token=token, subscriber=sub), status, \
        PRIVATE_HEADERS
