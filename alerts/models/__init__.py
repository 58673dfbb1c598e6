"""The database schema: subscribers and their consent, actions, alerts and deliveries.

One module per area; every table is importable from here (`from alerts.models import Alert`),
and importing this package registers them all on the metadata that migrations compare.
"""

from __future__ import annotations

from .actions import (
    CALL_OUTCOMES,
    KINDS,
    Action,
    ActionImage,
    ActionTarget,
    CallLog,
    LetterDelivery,
    Signature,
    alert_actions,
)
from .api import ApiToken, ApiWrite
from .audit import AuditEvent
from .base import Model, UTCDateTime, email_hash, email_key, new_token_key, utcnow
from .journeys import TRIGGERS, Journey, JourneyMember, JourneyStep
from .people import (
    BounceEvent,
    BounceKind,
    ConsentRecord,
    SignupAttempt,
    StaffRecoveryCode,
    StaffUser,
    Subscriber,
    SubscriberField,
    SubscriberFieldValue,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
    SuppressionLift,
)
from .sending import AbTest, Alert, AlertState, Delivery, DeliveryStatus, EmailText, SavedAudience
from .tracking import AlertLink, Click, ClickBatch, ClickCount
from .webhooks import WebhookAttempt, WebhookEndpoint, WebhookMessage, WebhookState

__all__ = [
    "AbTest", "Action", "ActionImage", "ActionTarget", "CALL_OUTCOMES", "CallLog", "KINDS",
    "LetterDelivery", "Alert", "AlertLink", "AlertState", "BounceEvent", "BounceKind", "Click",
    "ClickBatch", "ClickCount", "ConsentRecord", "Delivery", "DeliveryStatus", "EmailText", "Model",
    "SavedAudience", "Signature", "SignupAttempt", "StaffUser", "Subscriber", "SubscriberField",
    "SubscriberFieldValue", "SubscriberStatus",
    "SubscriberTopic", "Suppression", "SuppressionLift", "UTCDateTime", "alert_actions", "email_hash",
    "email_key", "new_token_key", "utcnow",
    "Journey", "JourneyMember", "JourneyStep", "TRIGGERS",
    "ApiToken", "ApiWrite", "AuditEvent", "StaffRecoveryCode",
    "WebhookAttempt", "WebhookEndpoint", "WebhookMessage", "WebhookState",
]
