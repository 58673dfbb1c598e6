"""Every Celery task's name, in one table: the contract between the code that queues work and
the workers that run it (`alerts.tasks` registers each under its name here).

A name stays as it is once released: tasks already queued under it must still find their
worker after an upgrade.
"""

from __future__ import annotations

# Emails, one task per email kind (`subscribers.emails`).
SEND_CONFIRMATION = "alerts.tasks.send_confirmation"
SEND_WELCOME = "alerts.tasks.send_welcome"
SEND_SIGNATURE_CONFIRMATION = "alerts.tasks.send_signature_confirmation"
SEND_ALERT_TEST = "alerts.tasks.send_alert_test"
SEND_STAFF_INVITATION = "alerts.tasks.send_staff_invitation"
SEND_APPROVAL_REQUEST = "alerts.tasks.send_approval_request"
# An import's fan-out: one task per chunk, turned into one email task per subscriber.
QUEUE_EMAILS = "alerts.tasks.queue_emails"
QUEUE_CONFIRMATIONS = "alerts.tasks.queue_confirmations"

# Signups: drained in batches from their light queue (`queueing.push_after_commit`), woken after
# a signup's commit when no drainer is awake; `handle_signup` takes one (kept for tasks queued
# under it before the light queue).
DRAIN_SIGNUPS = "alerts.tasks.drain_signups"
HANDLE_SIGNUP = "alerts.tasks.handle_signup"

# A blast.
DISPATCH_BLAST = "alerts.tasks.dispatch_blast"
FILL_BLAST = "alerts.tasks.fill_blast"
SEND_BATCH = "alerts.tasks.send_batch"

# Letters to decision-makers (`actions.letters`): queued after a letter's signature commits,
# and by beat.
SEND_LETTERS = "alerts.tasks.send_letters"

# Journeys (`alerts.journeys`): people entering on a trigger, and beat's pass over due steps.
ENTER_JOURNEYS = "alerts.tasks.enter_journeys"
JOURNEY_SIGNED = "alerts.tasks.journey_signed"
RUN_JOURNEYS = "alerts.tasks.run_journeys"

# Beat (celery_app's schedule).
SWEEP = "alerts.tasks.sweep"
START_SCHEDULED = "alerts.tasks.start_scheduled"
RECORD_CLICKS = "alerts.tasks.record_clicks"
EXPIRE_CLICKS = "alerts.tasks.expire_clicks"
DECIDE_AB_TESTS = "alerts.tasks.decide_ab_tests"

# Webhooks (their own queue: `celery_app.webhooks_queue`); the sweep is beat's.
DELIVER_WEBHOOKS = "alerts.tasks.deliver_webhooks"
SWEEP_WEBHOOKS = "alerts.tasks.sweep_webhooks"

ALL = frozenset(value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str))
