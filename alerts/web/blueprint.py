"""The public side's route tables: each blueprint with its rules, endpoints and views.

The view modules know nothing of these blueprints (they import no blueprint), so a view is
found here by its URL, and its decorators (rate limits, CSRF exemptions) stay on the view.
"""

from __future__ import annotations

from flask import Blueprint

from . import action_pages, embeds, preferences, privacy, public, redirects

GET = ("GET",)
POST = ("POST",)
GET_POST = ("GET", "POST")

# The Action Center, signup, confirm and unsubscribe links, an action's pages, healthz.
bp = Blueprint("public", __name__)
bp.add_url_rule("/", "index", public.index, methods=GET)
bp.add_url_rule("/subscribe", "subscribe", public.subscribe, methods=POST)
bp.add_url_rule("/subscribe", "subscribe_done", public.subscribe_done, methods=GET)
bp.add_url_rule("/favicon.ico", "favicon", public.favicon, methods=GET)
bp.add_url_rule("/confirm/<token>", "confirm", public.confirm, methods=GET_POST)
bp.add_url_rule("/unsubscribe/<token>", "unsubscribe", public.unsubscribe, methods=GET_POST)
bp.add_url_rule("/healthz", "healthz", public.healthz, methods=GET)
bp.add_url_rule("/actions/<slug>", "action", action_pages.action, methods=GET)
bp.add_url_rule("/actions/<slug>/sign", "sign", action_pages.sign, methods=POST)
bp.add_url_rule("/actions/<slug>/call", "call", action_pages.call, methods=POST)
bp.add_url_rule("/actions/<slug>/thanks", "thanks", action_pages.thanks, methods=GET)
bp.add_url_rule("/actions/<slug>/image/<digest>.<ext>", "action_image", action_pages.action_image,
                methods=GET)
bp.add_url_rule("/actions/confirm/<token>", "confirm_signature", action_pages.confirm_signature,
                methods=GET_POST)

# The subscriber's data download and erasure, from the unsubscribe page.
privacy_bp = Blueprint("privacy", __name__)
privacy_bp.add_url_rule("/unsubscribe/<token>/data.json", "data", privacy.data, methods=GET)
privacy_bp.add_url_rule("/unsubscribe/<token>/erase", "erase", privacy.erase, methods=GET_POST)

# Tracked links and the open pixel.
redirects_bp = Blueprint("redirects", __name__)
redirects_bp.add_url_rule("/r/<token>/<int:index>", "follow", redirects.follow, methods=GET)
redirects_bp.add_url_rule("/o/<token>.gif", "open_pixel", redirects.open_pixel, methods=GET)

# Topics and pause, posted from the unsubscribe page.
preferences_bp = Blueprint("preferences", __name__)
preferences_bp.add_url_rule("/unsubscribe/<token>/topics", "topics", preferences.topics, methods=POST)
preferences_bp.add_url_rule("/unsubscribe/<token>/pause", "pause", preferences.pause, methods=POST)
preferences_bp.add_url_rule("/unsubscribe/<token>/resume", "resume", preferences.resume, methods=POST)
# The pages a subscriber's own link leads to (confirm, unsubscribe, these, privacy) speak their language.
preferences_bp.before_app_request(preferences.use_subscribers_language)

# The forms placed on other websites (EMBED_ORIGINS) and the script that places them.
embeds_bp = Blueprint("embeds", __name__)
embeds_bp.add_url_rule("/embed/signup", "signup", embeds.signup, methods=GET)
embeds_bp.add_url_rule("/embed/signup", "signup_post", embeds.signup_post, methods=POST)
embeds_bp.add_url_rule("/embed/actions/<slug>", "action", embeds.action, methods=GET)
embeds_bp.add_url_rule("/embed/actions/<slug>", "action_post", embeds.action_post, methods=POST)
embeds_bp.add_url_rule("/embed.js", "embed_js", embeds.embed_js, methods=GET)

BLUEPRINTS = (bp, privacy_bp, redirects_bp, preferences_bp, embeds_bp)
