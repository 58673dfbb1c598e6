"""`GET /r/<token>/<index>`: a tracked link in an alert. Answers 302 first; recording is a Redis push.

The token (signed, one per recipient) names the alert and the delivery; the index picks
one of the links frozen when that alert's blast started, so the redirect can lead nowhere
else. Anything that does not verify is a 404 and nothing is recorded.
"""

from __future__ import annotations

import base64

from flask import abort, make_response, redirect, request

from ..clickcounts import OPENS
from ..extensions import limiter
from ..mail.signed_ids import parse_click_token
from ..tracking import links, machines, recording

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@limiter.exempt
def follow(token: str, index: int):
    parsed = parse_click_token(token)
    if parsed is None:
        abort(404)
    alert_id, delivery_id = parsed
    target = links.destination(alert_id, index, request.query_string.decode("latin-1"))
    if target is None:
        abort(404)
    if links.mode() != links.OFF:
        recording.record(alert_id, delivery_id, index,
                         machines.request_reason(request.method, request.headers))
    response = redirect(target, code=302)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@limiter.exempt
def open_pixel(token: str):
    """The opt-in open pixel (TRACK_OPENS=on): always the image, counted only when the token verifies."""
    parsed = parse_click_token(token)
    if parsed is not None and links.opens_tracked():
        recording.record(parsed[0], parsed[1], OPENS,
                         machines.open_reason(request.method, request.headers))
    response = make_response(PIXEL)
    response.headers["Content-Type"] = "image/gif"
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["X-Robots-Tag"] = "noindex"
    return response
