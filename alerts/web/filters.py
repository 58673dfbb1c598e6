"""Template filters for every page (public, staff and email), registered on the app, not a blueprint."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Flask, current_app, request, url_for

from .. import i18n, words
from ..actions import KIND_NAMES, ActionText, shares, targets, text_of
from ..blasts import progress
from ..mail.context import external_url
from ..models import Action, ActionTarget

# Query values a page's language links never repeat: `lang` is theirs to set, and an alert's
# reference (`r`) is no address to offer search engines.
_NOT_ALTERNATE = frozenset({"r", "not_me"})
# A form posted back with what to fix: its language links lead to the page the form is on.
_FORM_PAGES = {"public.subscribe": "public.index", "public.sign": "public.action"}


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


def language_url(code: str | None, *, alternate: bool = False) -> str | None:
    """This page in language `code` (`?lang=code`; None: without one, as the browser would pick).
    `alternate`: an absolute BASE_URL address for `<link rel=alternate hreflang>`, None on a page
    that should not offer one (a link's token in its path). None when there is no such page."""
    endpoint = request.endpoint or ""
    if request.method not in ("GET", "HEAD"):
        endpoint = _FORM_PAGES.get(endpoint, "")
    if not endpoint:
        return None
    path_values = dict(request.view_args or {})
    if alternate and "token" in path_values:
        return None
    query = {k: v for k, v in request.args.items(multi=False) if k != "lang"}
    if alternate:
        query = {k: v for k, v in query.items() if k not in _NOT_ALTERNATE}
    if code is not None and i18n.known(code):
        query["lang"] = code
    values = {**query, **path_values}
    if alternate:
        return external_url(endpoint, **values)
    return url_for(endpoint, **values)


def action_text(action: Action) -> ActionText:
    """The action's title, summary, text, button and pledge in the page's language (else the
    default language's, whole): what public pages print."""
    return text_of(action, i18n.current())


def share_meta(action: Action) -> list[tuple[str, str, str]]:
    """The page's Open Graph and Twitter card tags, in the page's language."""
    return shares.meta(action, action_text(action))


def kind_name(action: Action) -> str:
    """"Petition", "Pledge", "Letter" or "Call", in the page's language."""
    return str(KIND_NAMES.get(action.kind, KIND_NAMES["petition"]))


def public_targets(action: Action) -> list[ActionTarget]:
    """The targets a letter's or call's page names: every one but the placeholders."""
    return targets.real_targets(action.id) if action.kind in ("letter", "call") else []


def register(app: Flask) -> None:
    app.add_template_global(action_text, "action_text")
    app.add_template_global(kind_name, "kind_name")
    app.add_template_global(public_targets, "public_targets")
    app.add_template_global(share_meta, "share_meta")
    app.add_template_filter(words.in_sentence, "in_sentence")
    app.add_template_filter(words.action_name, "action_name")
    app.add_template_filter(format_when, "when")
    app.add_template_filter(format_org_time, "org_time")
    app.add_template_filter(format_percent, "percent")
    app.add_template_filter(format_duration, "duration")
    app.add_template_global(language_url, "language_url")
