"""Template filters for every page (public, staff and email), registered on the app, not a blueprint."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Flask, current_app

from .. import i18n, words
from ..actions import ActionText, text_of
from ..blasts import progress
from ..models import Action


def format_when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def org_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["ORG_TIMEZONE"])


def format_org_time(value: datetime | None) -> str:
    """A time as the organisation reads it, with UTC beside it when the zone is not UTC."""
    if value is None:
        return "—"
    local = value.astimezone(org_zone())
    text = local.strftime("%a %d %b %Y, %H:%M %Z")
    if local.utcoffset():
        text += value.astimezone(UTC).strftime(" (%H:%M UTC)")
    return text


def format_percent(value: float) -> str:
    """100.0 as 100 and 33.3 as 33.3, as JavaScript's String() writes them."""
    return f"{value:g}"


def format_duration(seconds: float | None) -> str:
    return progress.duration_words(seconds)


def action_text(action: Action) -> ActionText:
    """The action's title, summary, text, button and pledge in the page's language (else the
    default language's, whole): what public pages print."""
    return text_of(action, i18n.current())


def register(app: Flask) -> None:
    app.add_template_global(action_text, "action_text")
    app.add_template_filter(words.in_sentence, "in_sentence")
    app.add_template_filter(words.action_name, "action_name")
    app.add_template_filter(format_when, "when")
    app.add_template_filter(format_org_time, "org_time")
    app.add_template_filter(format_percent, "percent")
    app.add_template_filter(format_duration, "duration")
