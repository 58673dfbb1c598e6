"""Who an alert goes to: audience rules, their SQL, their size, their words, saved audiences.

Between blasts (which fix recipients with one INSERT … SELECT using `conditions`) and
actions/subscribers (whose tables the rules read).
"""

from .rules import (
    FIELD_KINDS,
    AudienceError,
    Rules,
    conditions,
    describe,
    linked_action_ids,
    parse,
    reminder_rules,
    sentence,
    size,
)
from .saved import delete_saved, save_audience, saved_audiences

__all__ = [
    "FIELD_KINDS", "AudienceError", "Rules", "conditions", "describe", "linked_action_ids", "parse",
    "reminder_rules", "sentence", "size",
    "delete_saved", "save_audience", "saved_audiences",
]
