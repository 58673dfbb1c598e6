"""Staff sessions: who is logged in, for how long, and the lockout after failed logins.

A session is revocable on the server: the cookie carries the account's `session_epoch`,
checked on every request, and logout, a password change or a lockout bump it, which ends
every session of that account at once (a copied cookie is dead after logout).

The lockout is per (account, IP): five failures from one address lock that account for
that address only, so nobody can lock a staff member out by failing on purpose from
elsewhere; the per-IP rate limit on the login form bounds guessing from each address.
Wrong second-factor codes count per account whatever the IP: whoever gets that far knows the
password. Between the two steps the session holds a short "password passed" state, no login.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import redis
from flask import current_app, request, session

from ... import redis_conn
from ...accounts import end_sessions
from ...extensions import db
from ...models import StaffUser, email_hash

log = logging.getLogger(__name__)

SESSION_USER = "staff_id"
_CACHED = "alerts.staff_user"  # the request's staff user, looked up once
SESSION_LOGIN_AT = "staff_login_at"
SESSION_EPOCH = "staff_epoch"
# Password passed, second factor not yet: NOT a login (current_staff() ignores it).
SESSION_PENDING = "staff_2fa_pending"
PENDING_SECONDS = 5 * 60


# -- the session -----------------------------------------------------------------------


def login(user: StaffUser) -> None:
    """A fresh session on every login: nothing set before it (a planted value) survives."""
    session.clear()
    session.permanent = True
    session[SESSION_USER] = user.id
    session[SESSION_LOGIN_AT] = int(time.time())
    session[SESSION_EPOCH] = user.session_epoch


def begin_second_factor(user: StaffUser, next_url: str | None) -> None:
    """The password was right and the account has 2FA: a short-lived state that is no login."""
    session.clear()
    session[SESSION_PENDING] = {"id": user.id, "at": int(time.time()), "epoch": user.session_epoch,
                                "next": next_url or ""}


def pending_second_factor() -> tuple[StaffUser, str] | None:
    """The account (and the page asked for) whose password passed a moment ago, if still valid."""
    pending = session.get(SESSION_PENDING)
    if not isinstance(pending, dict) or not isinstance(pending.get("at"), int):
        return None
    if time.time() - pending["at"] > PENDING_SECONDS:
        return None
    user = db.session.get(StaffUser, pending.get("id")) if isinstance(pending.get("id"), int) else None
    if user is None or pending.get("epoch") != user.session_epoch:
        return None
    return user, str(pending.get("next") or "")


def end_second_factor() -> None:
    session.pop(SESSION_PENDING, None)


def logout() -> None:
    """Ends this session and, on the server, every other of the account (the caller commits)."""
    user = current_staff()
    if user is not None:
        end_sessions(user.id)
    session.clear()
    request.environ.pop(_CACHED, None)


def session_lifetime() -> float:
    return current_app.permanent_session_lifetime.total_seconds()


def session_expired() -> bool:
    """Sessions end a fixed time after login, however busy; Flask alone would extend them."""
    login_at = session.get(SESSION_LOGIN_AT)
    if not isinstance(login_at, int):
        return True
    return time.time() - login_at > session_lifetime()


def current_staff() -> StaffUser | None:
    """The logged-in staff user, or None (no session, an expired one, a deleted or disabled account)."""
    if _CACHED in request.environ:  # once per request (g can outlive one: an app context kept open)
        cached: StaffUser | None = request.environ[_CACHED]
        return cached
    user = None
    user_id = session.get(SESSION_USER)
    if isinstance(user_id, int) and not session_expired():
        user = db.session.get(StaffUser, user_id)
        if user is not None and session.get(SESSION_EPOCH) != user.session_epoch:
            user = None  # revoked: logged out elsewhere, password changed, or locked
        if user is not None and user.disabled_at is not None:
            user = None  # disabled: its sessions are over, whatever the epoch says
    request.environ[_CACHED] = user
    return user


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: never another host, scheme or a `//host` shortcut."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return None
    return target


# -- the per-account lockout ----------------------------------------------------------


def _redis() -> redis.Redis:
    clients = current_app.extensions.setdefault("alerts.auth_redis", {})
    url = current_app.config["REDIS_URL"]
    if url not in clients:
        clients[url] = redis_conn.client(url)
    return clients[url]


# What the failures count against: the password ("login", per account and IP) or the second
# factor ("2fa", per account whatever the IP: whoever gets there knows the password already).
PASSWORD, SECOND_FACTOR = "login", "2fa"


def _key(kind: str, email: str, ip: str | None, stage: str = PASSWORD) -> str:
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX", "")
    return f"{prefix}:staff-{stage}:{kind}:{email_hash(email)}:{ip or '-'}"


def lockout_seconds_left(email: str, ip: str | None, stage: str = PASSWORD) -> int:
    """How long this account stays locked for this IP; 0 when it is not (or Redis cannot say)."""
    try:
        ttl = _redis().ttl(_key("lock", email, ip, stage))
    except redis.RedisError as exc:
        log.warning("login lockout check skipped: Redis unavailable (%s)", exc)
        return 0
    return max(int(ttl), 0)  # type: ignore[arg-type]  # redis-py types a sync reply as maybe Awaitable


def record_failure(email: str, ip: str | None, stage: str = PASSWORD) -> bool:
    """Count a failed login for this account from this IP; True when that failure locked it."""
    cfg = current_app.config
    window = cfg["STAFF_LOCKOUT_WINDOW_SECONDS"]
    limit = cfg["STAFF_LOCKOUT_FAILURES"]
    fail_key = _key("fail", email, ip, stage)
    try:
        pipe = _redis().pipeline()
        pipe.set(fail_key, 0, ex=window, nx=True)  # the window starts at the first failure
        pipe.incr(fail_key)
        failures = pipe.execute()[1]
        if failures >= limit:
            pipe = _redis().pipeline()
            pipe.set(_key("lock", email, ip, stage), 1, ex=cfg["STAFF_LOCKOUT_SECONDS"])
            pipe.delete(fail_key)
            pipe.execute()
            log.warning("staff %s locked after %d failures (account hash %s)",
                        stage, failures, email_hash(email)[:12])
            return True
    except redis.RedisError as exc:
        log.warning("login failure not counted: Redis unavailable (%s)", exc)
    return False


def clear_failures(email: str, ip: str | None, stage: str = PASSWORD) -> None:
    try:
        _redis().delete(_key("fail", email, ip, stage))
    except redis.RedisError as exc:
        log.warning("could not clear login failures: Redis unavailable (%s)", exc)
