"""Configuration from the environment (and `.env`), so one image runs everywhere."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

from .permissions import Role, RoleError, parse_require_2fa

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# What the footer says until ORG_NAME and ORG_POSTAL_ADDRESS are set: plainly a placeholder,
# and a blast outside `alerts dev` is refused while the address is one (CAN-SPAM).
PLACEHOLDER_ORG_NAME = "Example Org (dev)"
PLACEHOLDER_POSTAL_ADDRESS = "1 Example Street, Springfield (dev placeholder: set ORG_POSTAL_ADDRESS)"
POSTAL_ADDRESS_REQUIRED = (
    "ORG_POSTAL_ADDRESS is not set: bulk mail law (CAN-SPAM) needs your organisation's real "
    "postal address in every message. Set it in the environment or in .env, then restart "
    "the web app and the workers"
)


class ConfigError(RuntimeError):
    """A setting cannot be used as it stands; the message names it and what it must be."""


def postal_address_missing(cfg: Mapping[str, Any]) -> bool:
    """True when a blast must be refused: the address is the placeholder outside `alerts dev`."""
    return cfg["ORG_POSTAL_ADDRESS"] == PLACEHOLDER_POSTAL_ADDRESS and not cfg.get("DEV_MODE")


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc


def _float(name: str, default: float | None) -> float | None:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if value <= 0:
        raise ConfigError(f"{name} must be more than 0, got {raw!r}")
    return value


def _timezone(name: str, default: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    value = _env(name, default) or default
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{name} must be an IANA time zone like Europe/London, got {value!r}") from exc
    return value


def _hour(name: str, default: int) -> int:
    value = _int(name, default)
    if not 0 <= value <= 23:
        raise ConfigError(f"{name} must be an hour from 0 to 23, got {value}")
    return value


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = (_env(name, default) or default).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _origins(name: str) -> tuple[str, ...]:
    """Comma-separated web origins (scheme://host[:port]); a bad entry is named at startup."""
    from urllib.parse import urlsplit

    found = []
    for raw in (_env(name, "") or "").split(","):
        entry = raw.strip().rstrip("/")
        if not entry:
            continue
        try:
            parts = urlsplit(entry)
            parts.port  # noqa: B018  # raises ValueError for a port that is not a number
        except ValueError:
            parts = None
        if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
                or parts.path or parts.query or parts.fragment or parts.username or "*" in entry):
            raise ConfigError(f"{name}: {raw.strip()!r} is not an origin; write each as "
                              "scheme://host or scheme://host:port, e.g. https://www.example.org")
        found.append(entry.lower())
    return tuple(found)


def _delays(name: str, default: str) -> list[float]:
    raw = _env(name, default) or default
    try:
        delays = [float(part) for part in raw.replace(" ", "").split(",") if part]
    except ValueError as exc:
        raise ConfigError(f"{name} must be seconds separated by commas (5,300,1800), got {raw!r}") from exc
    if not delays or any(d <= 0 for d in delays):
        raise ConfigError(f"{name} must be one or more delays of more than 0 seconds, got {raw!r}")
    return delays


def _dev_secret_key(instance_path: Path) -> str:
    """Keep a generated key in instance/ so dev sessions and tokens survive restarts."""
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # Created 0600: never readable by others, not even for the moment before a chmod.
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key)
    return key


def _require_2fa(name: str, default: str) -> frozenset[Role]:
    try:
        return parse_require_2fa(_env(name, default) or default)
    except RoleError as exc:
        raise ConfigError(str(exc)) from exc


def load_config(instance_path: Path) -> dict:
    """Read every setting once; the names are part of the outside contract."""
    load_dotenv(PROJECT_ROOT / ".env", override=False)
    secret = _env("SECRET_KEY") or _dev_secret_key(instance_path)
    keys = [k.strip() for k in secret.split(",") if k.strip()]
    database_url = _env("DATABASE_URL", f"sqlite:///{instance_path / 'alerts.db'}")
    return {
        "SECRET_KEY": keys[0],
        "SECRET_KEYS": keys,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": _env("REDIS_URL"),
        "SMTP_URL": _env("SMTP_URL", "smtp://127.0.0.1:1025"),
        "BASE_URL": (_env("BASE_URL", "http://127.0.0.1:5000") or "").rstrip("/"),
        "MAIL_FROM": _env("MAIL_FROM", "Action Alerts <alerts@localhost>"),
        "ORG_NAME": _env("ORG_NAME", PLACEHOLDER_ORG_NAME),
        "ORG_POSTAL_ADDRESS": _env("ORG_POSTAL_ADDRESS", PLACEHOLDER_POSTAL_ADDRESS),
        # Set by `alerts dev` for the processes it starts: placeholders are fine there.
        "DEV_MODE": _env("ALERTS_DEV") == "1",
        "DKIM_DOMAIN": _env("DKIM_DOMAIN"),
        "DKIM_SELECTOR": _env("DKIM_SELECTOR"),
        "DKIM_PRIVATE_KEY_FILE": _env("DKIM_PRIVATE_KEY_FILE"),
        "LIST_ID": _env("LIST_ID"),
        # Abuse controls: per-IP limit on the form and a per-address cooldown between
        # confirmation emails, so the form cannot be used to flood someone's inbox.
        "SUBSCRIBE_RATE_LIMIT": _env("SUBSCRIBE_RATE_LIMIT", "10/minute;60/hour"),
        # Signing an action: per IP (a viral petition is signed from shared office and campus
        # addresses, so it is generous) and per address (or per alert reference).
        "SIGN_RATE_LIMIT": _env("SIGN_RATE_LIMIT", "60/minute;600/hour"),
        "SIGN_ADDRESS_RATE_LIMIT": _env("SIGN_ADDRESS_RATE_LIMIT", "10/minute;30/hour"),
        "CONFIRM_COOLDOWN_SECONDS": _int("CONFIRM_COOLDOWN_SECONDS", 15 * 60),
        "CONFIRM_MAX_AGE_SECONDS": _int("CONFIRM_MAX_AGE_SECONDS", 48 * 3600),
        # A recorded signup whose task has not run after this long (the broker was away when
        # it came) is applied by the sweep instead.
        "SIGNUP_STALE_SECONDS": _int("SIGNUP_STALE_SECONDS", 60),
        "CONSENT_TEXT_VERSION": _env("CONSENT_TEXT_VERSION", "2026-11-advocate-for-kids-v1"),
        "SMTP_TIMEOUT": _int("SMTP_TIMEOUT", 30),
        "MAIL_RETRY_BACKOFF_MAX": _int("MAIL_RETRY_BACKOFF_MAX", 600),
        "MAIL_RETRY_BACKOFF": _int("MAIL_RETRY_BACKOFF", 5),
        "MAIL_MAX_RETRIES": _int("MAIL_MAX_RETRIES", 20),
        # X-RateLimit-* and Retry-After go on rate-limited (429) answers only (alerts/errors.py):
        # on every answer they cost two more Redis round trips (~0.45 ms of a signup's CPU).
        "RATELIMIT_HEADERS_ENABLED": False,
        # While Redis does not answer, every process counts limits in its own memory (the
        # forms keep answering), and goes back to Redis once it answers (alerts/extensions.py).
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "WTF_CSRF_TIME_LIMIT": None,
        "SESSION_COOKIE_HTTPONLY": True,
        # Secure when BASE_URL is https (set in create_app, after a test's overrides).
        "SESSION_COOKIE_SECURE": None,
        # Request bodies: small everywhere (a signup, a one-click POST, a staff form), larger
        # only for the staff CSV import, and only with a staff session (web/security.py).
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 1024 * 1024),
        "STAFF_UPLOAD_MAX_BYTES": _int("STAFF_UPLOAD_MAX_BYTES", 64 * 1024 * 1024),
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": _int("STAFF_SESSION_SECONDS", 8 * 3600),
        # A staff login lasts a fixed time from the moment of login, so the cookie is sent only
        # when the session changes: a background request (the live audience count, progress)
        # answering late can then never put back an older cookie over a newer one (a flash lost).
        "SESSION_REFRESH_EACH_REQUEST": False,
        # Staff logins: a per-IP limit on login attempts, and a per-account lock after
        # STAFF_LOCKOUT_FAILURES failures within the window (whatever the IP).
        "STAFF_LOGIN_RATE_LIMIT": _env("STAFF_LOGIN_RATE_LIMIT", "10/minute"),
        "STAFF_LOCKOUT_FAILURES": _int("STAFF_LOCKOUT_FAILURES", 5),
        "STAFF_LOCKOUT_WINDOW_SECONDS": _int("STAFF_LOCKOUT_WINDOW_SECONDS", 15 * 60),
        "STAFF_LOCKOUT_SECONDS": _int("STAFF_LOCKOUT_SECONDS", 15 * 60),
        # An invitation link to a new staff account works once, for this long.
        "STAFF_INVITE_MAX_AGE_SECONDS": _int("STAFF_INVITE_MAX_AGE_SECONDS", 7 * 24 * 3600),
        # Who must use a second factor (TOTP) to log in: by default those who can send; under
        # `alerts dev` nobody unless set (its one account is the owner, on this machine only).
        "STAFF_REQUIRE_2FA": _require_2fa("STAFF_REQUIRE_2FA",
                                          "none" if _env("ALERTS_DEV") == "1" else "senders"),
        # A blast to at least this many needs a second staff member's approval to start.
        "APPROVAL_MIN_RECIPIENTS": _int("APPROVAL_MIN_RECIPIENTS", 1000),
        # The blast engine: the most rows in one batch task, and the fewest batches a dispatch
        # makes (rows allowing: see blasts.dispatch.batch_size), how often a batch records its
        # outcomes (the window between the server's 250 and the commit), when a claimed row
        # counts as abandoned by a dead worker, and when a blast with no progress is re-dispatched.
        "BLAST_BATCH_SIZE": _int("BLAST_BATCH_SIZE", 2000),
        "BLAST_MIN_BATCHES": _int("BLAST_MIN_BATCHES", 8),
        # Recipients are fixed this many subscribers at a time by the workers while the first
        # batches go out; the send request fixes a tenth of it (a million-person list starts
        # sending in a second or two instead of after one long INSERT).
        "BLAST_FILL_CHUNK": _int("BLAST_FILL_CHUNK", 20_000),
        "BLAST_FLUSH_MS": _int("BLAST_FLUSH_MS", 50),
        # The lease: the recorder renews it once a second, so 30 s is thirty heartbeats; a
        # dead worker's rows are back in the queue within lease + sweep interval.
        "BLAST_STUCK_SECONDS": _int("BLAST_STUCK_SECONDS", 30),
        "BLAST_STALL_SECONDS": _int("BLAST_STALL_SECONDS", 45),
        "BLAST_MAX_ATTEMPTS": _int("BLAST_MAX_ATTEMPTS", 8),
        "SWEEP_INTERVAL_SECONDS": _int("SWEEP_INTERVAL_SECONDS", 15),
        # Pacing (alerts/mail/pacing.py), per relay across every worker: unset means as fast
        # as the relay accepts, slowing down whenever it pushes back. A relay in SMTP_URL may
        # override both with ?max_rate=&max_connections=.
        "SMTP_MAX_RATE": _float("SMTP_MAX_RATE", None),
        "SMTP_MAX_CONNECTIONS": _int("SMTP_MAX_CONNECTIONS", 0) or None,
        # How long a batch waits for a connection slot before handing its rows back.
        "SMTP_SLOT_WAIT_SECONDS": _int("SMTP_SLOT_WAIT_SECONDS", 60),
        # Per recipient domain, for operators who send through their own MTA:
        # "yahoo.com=connections:2,rate:10,per_connection:20; gmail.com=connections:4".
        "SMTP_DOMAIN_LIMITS": _env("SMTP_DOMAIN_LIMITS", ""),
        # Shown beside every scheduled time on the staff pages (an IANA name).
        "ORG_TIMEZONE": _timezone("ORG_TIMEZONE", "UTC"),
        # How often beat looks for scheduled alerts that are due.
        "SCHEDULE_INTERVAL_SECONDS": _int("SCHEDULE_INTERVAL_SECONDS", 10),
        # Bounces: the VERP return-path domain (its MX points at `alerts bounces serve`).
        "BOUNCE_DOMAIN": _env("BOUNCE_DOMAIN"),
        # Soft bounces suppress after this many within the window (listmonk records soft
        # bounces without acting by default; Mailman scores them half a hard bounce).
        "BOUNCE_SOFT_THRESHOLD": _int("BOUNCE_SOFT_THRESHOLD", 3),
        "BOUNCE_SOFT_WINDOW_DAYS": _int("BOUNCE_SOFT_WINDOW_DAYS", 7),
        # The receiver's limits: a report bigger than the parser reads (1 MB; a bounce quoting
        # one of our alerts is far under) is refused with 552 as it arrives, never held whole;
        # past BOUNCE_MAX_SESSIONS reports arriving at once, the next sender is told to retry
        # (452), so a flood of big reports costs at most sessions x size of memory.
        "BOUNCE_MAX_MESSAGE_BYTES": _int("BOUNCE_MAX_MESSAGE_BYTES", 1_000_000),
        "BOUNCE_MAX_SESSIONS": _int("BOUNCE_MAX_SESSIONS", 8),
        "CELERY_TASK_QUEUE": _env("CELERY_TASK_QUEUE", "alerts"),
        # The REST API: requests per token (flask-limiter's notation), and the languages a
        # subscriber's `language` may name.
        "API_RATE_LIMIT": _env("API_RATE_LIMIT", "600/minute;20000/hour"),
        "LANGUAGES": [code.strip() for code in (_env("LANGUAGES", "en,es") or "").split(",") if code.strip()],
        # Letters to decision-makers: one message per letter (each) or one a day per target
        # at LETTER_DIGEST_HOUR, ORG_TIMEZONE (digest); how often beat sends what is due.
        "LETTER_DELIVERY": _choice("LETTER_DELIVERY", ("each", "digest"), "each"),
        "LETTER_DIGEST_HOUR": _hour("LETTER_DIGEST_HOUR", 17),
        "LETTER_SWEEP_SECONDS": _int("LETTER_SWEEP_SECONDS", 30),
        # Journeys: how often beat gives due people their next step, how many per pass, and the
        # most emails (blasts and journeys together) one person gets in 24 hours from journeys.
        "JOURNEY_SWEEP_SECONDS": _int("JOURNEY_SWEEP_SECONDS", 60),
        "JOURNEY_BATCH": _int("JOURNEY_BATCH", 1000),
        "JOURNEY_DAILY_CAP": _int("JOURNEY_DAILY_CAP", 2),
        # Where a phone number given without +country is read from (ISO 3166 region code).
        "PHONE_REGION": (_env("PHONE_REGION", "US") or "US").upper(),
        # Click tracking (see the README's privacy section): person | aggregate | off; how
        # long per-person clicks are kept; how often the Redis list of clicks is recorded;
        # how close together two links of one message must be opened to count as a scanner.
        "TRACK_CLICKS": _choice("TRACK_CLICKS", ("person", "aggregate", "off"), "person"),
        "CLICK_RETENTION_DAYS": _int("CLICK_RETENTION_DAYS", 90),
        # An open-tracking pixel, off by default: since Apple Mail Privacy Protection its
        # figures are mostly machines. When on, opens are counted per alert (never per person).
        "TRACK_OPENS": _choice("TRACK_OPENS", ("off", "on"), "off"),
        "CLICK_FLUSH_SECONDS": _int("CLICK_FLUSH_SECONDS", 5),
        "CLICK_BURST_SECONDS": _int("CLICK_BURST_SECONDS", 2),
        "CLICK_HOLD_SECONDS": _int("CLICK_HOLD_SECONDS", 3),
        # Behind a reverse proxy: how many X-Forwarded-For hops to trust (0: none), so that
        # rate limits and consent records see the visitor's address, not the proxy's.
        "PROXY_FIX_X_FOR": _int("PROXY_FIX_X_FOR", 0),
        # Webhooks (docs/webhooks.md): http:// and loopback/private targets allowed (development
        # and tests only); the time one try may take; the delays between tries (Standard
        # Webhooks' schedule: about 27 hours in all); how long an endpoint may fail before it is
        # disabled; how long a claimed message is held from other workers; the sweep's period.
        "WEBHOOK_ALLOW_INSECURE": _env("WEBHOOK_ALLOW_INSECURE") == "1",
        "WEBHOOK_TIMEOUT_SECONDS": _float("WEBHOOK_TIMEOUT_SECONDS", 10.0),
        "WEBHOOK_RETRY_SCHEDULE": _delays("WEBHOOK_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000"),
        "WEBHOOK_DISABLE_AFTER_DAYS": _float("WEBHOOK_DISABLE_AFTER_DAYS", 5.0),
        "WEBHOOK_CLAIM_SECONDS": _int("WEBHOOK_CLAIM_SECONDS", 60),
        "WEBHOOK_SWEEP_SECONDS": _float("WEBHOOK_SWEEP_SECONDS", 5.0),
        # Sent and failed messages (payloads quote addresses) are deleted after this many days.
        "WEBHOOK_KEEP_DAYS": _int("WEBHOOK_KEEP_DAYS", 30),
        # Logs: "json" writes one JSON object per line (see alerts/logs.py); "text" leaves
        # logging as Flask, gunicorn and Celery set it up.
        "LOG_FORMAT": (_env("LOG_FORMAT", "text") or "text").lower(),
        "LOG_LEVEL": (_env("LOG_LEVEL", "INFO") or "INFO").upper(),
        # Embedded forms (docs/embedding.md): the sites allowed to frame them and post them,
        # how long a framed form stays valid, and the proof-of-work's size (the most numbers
        # a visitor's browser may have to try: bench.embed_pow measures what it costs).
        "EMBED_ORIGINS": _origins("EMBED_ORIGINS"),
        "EMBED_FORM_MAX_AGE": _int("EMBED_FORM_MAX_AGE", 2 * 3600),
        "EMBED_POW_MAX_NUMBER": _int("EMBED_POW_MAX_NUMBER", 100_000),
    }
