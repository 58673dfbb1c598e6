"""Signed webhooks (Standard Webhooks): endpoints, the outbox written with each event, delivery.

Below the features that emit events (subscribers, actions, bounces, blasts), above the models.
"""

from __future__ import annotations

SUBSCRIBER_CONFIRMED = "subscriber.confirmed"
SUBSCRIBER_UNSUBSCRIBED = "subscriber.unsubscribed"
SUBSCRIBER_ERASED = "subscriber.erased"
SIGNATURE_CREATED = "signature.created"
ALERT_SENT = "alert.sent"
BOUNCE_HARD = "bounce.hard"
COMPLAINT = "complaint"
# Every type an endpoint may ask for, in the order staff see them.
EVENT_TYPES = (SUBSCRIBER_CONFIRMED, SUBSCRIBER_UNSUBSCRIBED, SUBSCRIBER_ERASED, SIGNATURE_CREATED,
               ALERT_SENT, BOUNCE_HARD, COMPLAINT)
# What "send test event" posts: to the one endpoint, whatever types it asked for.
TEST_EVENT = "webhook.test"
