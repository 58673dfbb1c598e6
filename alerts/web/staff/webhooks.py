"""Staff pages for webhooks: endpoints (add, remove, re-enable), their deliveries, test and redeliver.

The routes are in the staff blueprint's table, behind its login gate; only POSTs change anything.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import SelectChoice, StringField
from wtforms.validators import DataRequired, Length

from ...extensions import db
from ...models import WebhookMessage
from ...webhooks import EVENT_TYPES, delivery, endpoints
from .common import current_staff, record
from .forms import MultiCheckboxField

EVENT_HINTS = {
    "subscriber.confirmed": "someone confirmed their subscription (or was imported with consent)",
    "subscriber.unsubscribed": "someone unsubscribed (a link, one-click, a complaint)",
    "subscriber.erased": "someone's data was erased (the id alone)",
    "signature.created": "a petition or pledge was signed",
    "alert.sent": "an alert finished sending",
    "bounce.hard": "an address bounced permanently and is suppressed",
    "complaint": "someone reported an alert as spam",
}


class EndpointForm(FlaskForm):
    url = StringField(
        "URL", validators=[DataRequired("Enter the URL events are posted to."), Length(max=2000)],
        render_kw={"placeholder": "https://crm.example.org/hooks/alerts", "autocomplete": "off"},
    )
    events = MultiCheckboxField("Events", choices=[SelectChoice(e, e) for e in EVENT_TYPES],
                                validators=[DataRequired("Choose at least one event.")])


def _page(form: EndpointForm, status: int = 200,
          secret: tuple[int, str] | None = None) -> ResponseReturnValue:
    return render_template("staff/webhooks.html", form=form, endpoints=endpoints.listed(),
                           disabled=endpoints.disabled(), hints=EVENT_HINTS, secret=secret), status


def webhooks() -> ResponseReturnValue:
    return _page(EndpointForm())


def webhook_add() -> ResponseReturnValue:
    form = EndpointForm()
    if not form.validate_on_submit():
        return _page(form, 400)
    try:
        endpoint = endpoints.add(form.url.data, form.events.data, by=current_staff().email)
    except endpoints.EndpointError as exc:
        form.url.errors = [*form.url.errors, str(exc)]
        return _page(form, 400)
    db.session.flush()
    record("webhook.add", f"webhook {endpoint.id}", host=urlsplit(endpoint.url).netloc,
           events=sorted(form.events.data))
    db.session.commit()
    # The secret is shown on this answer only: it is not in a URL, a flash or a later page.
    return _page(EndpointForm(formdata=None), 200, secret=(endpoint.id, endpoint.secret))


def webhook(endpoint_id: int) -> ResponseReturnValue:
    endpoint = endpoints.get(endpoint_id)
    if endpoint is None:
        abort(404)
    return render_template("staff/webhook.html", endpoint=endpoint, messages=delivery.recent(endpoint.id),
                           disabled=endpoints.disabled())


def webhook_remove(endpoint_id: int) -> ResponseReturnValue:
    if not endpoints.remove(endpoint_id):
        abort(404)
    record("webhook.remove", f"webhook {endpoint_id}")
    db.session.commit()
    flash(f"Webhook endpoint {endpoint_id} removed: nothing more is sent to it.", "success")
    return redirect(url_for("staff.webhooks"))


def webhook_enable(endpoint_id: int) -> ResponseReturnValue:
    if endpoints.get(endpoint_id) is None:
        abort(404)
    if endpoints.enable(endpoint_id):
        record("webhook.enable", f"webhook {endpoint_id}")
        db.session.commit()
        flash("Enabled again: the messages that were waiting are being sent.", "success")
    return redirect(url_for("staff.webhook", endpoint_id=endpoint_id))


def webhook_test(endpoint_id: int) -> ResponseReturnValue:
    endpoint = endpoints.get(endpoint_id)
    if endpoint is None:
        abort(404)
    delivery.send_test(endpoint.id, current_staff().email)
    record("webhook.test", f"webhook {endpoint.id}")
    db.session.commit()
    flash("A test event is on its way; its answer shows below in a moment (reload).", "info")
    return redirect(url_for("staff.webhook", endpoint_id=endpoint_id))


def webhook_redeliver(endpoint_id: int, message_id: int) -> ResponseReturnValue:
    message = db.session.get(WebhookMessage, message_id)
    if message is None or message.endpoint_id != endpoint_id or endpoints.get(endpoint_id) is None:
        abort(404)
    delivery.redeliver(message.id)
    record("webhook.redeliver", f"webhook {endpoint_id}", message=message.msg_id)
    db.session.commit()
    flash(f"Message {message.msg_id} is sent again, with the same webhook-id.", "info")
    return redirect(url_for("staff.webhook", endpoint_id=endpoint_id))
