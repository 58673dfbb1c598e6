"""Journeys: a trigger, then emails after delays, each person passing each step at most once.

A step's email is its own alert (state "journey"): composed and previewed like any alert, and
sent by the blast engine's batches (pacing, DKIM, VERP, click tracking, one-press signing)
once a delivery row for the person is queued. The (alert, subscriber) key of deliveries
makes each step reach each person at most once; the sweep's recovery makes it reach them.
Nothing here commits: the caller does.
"""

from __future__ import annotations

from .engine import (
    DEFAULT_NAME,
    JourneyError,
    add_step,
    create,
    ensure_default,
    enter,
    enter_imported,
    journey_of,
    on_signature,
    parse_trigger,
    remove_step,
    run_due,
    set_paused,
    update_step,
)

__all__ = [
    "DEFAULT_NAME", "JourneyError", "add_step", "create", "enter", "enter_imported", "ensure_default",
    "journey_of",
    "on_signature", "parse_trigger", "remove_step", "run_due", "set_paused",
    "update_step",
]
