"""Staff sessions: who is logged in, for how long, and the lockout after failed logins.

A session is revocable on the server: the cookie carries the account's `session_epoch`,
checked on every request, and logout, a password change or a lockout bump it, which ends
every session of that account at once (a copied cookie is dead after logout).

The lockout is per (account, IP): five failures from one address lock that account for
that address only, so nobody can lock a staff member out by failing on purpose from
elsewhere; the per-IP rate limit on the login form bounds guessing from each address.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import redis
from flask import current_app, g, session

from ... import redis_conn
from ...accounts import end_sessions
from ...extensions import db
from ...models import StaffUser, email_hash

log = logging.getLogger(__name__)

SESSION_USER = "staff_id"
SESSION_LOGIN_AT = "staff_login_at"
SESSION_EPOCH = "staff_epoch"


# -- the session -----------------------------------------------------------------------


def login(user: StaffUser) -> None:
    """A fresh session on every login: nothing set before it (a planted value) survives."""
    session.clear()
    session.permanent = True
    session[SESSION_USER] = user.id
    session[SESSION_LOGIN_AT] = int(time.time())
    session[SESSION_EPOCH] = user.session_epoch


def logout() -> None:
    """Ends this session and, on the server, every other of the account (the caller commits)."""
    user = current_staff()
    if user is not None:
        end_sessions(user.id)
    session.clear()
    g.pop("staff", None)


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
    if "staff" in g:
        return g.staff
    user = None
    user_id = session.get(SESSION_USER)
    if isinstance(user_id, int) and not session_expired():
        user = db.session.get(StaffUser, user_id)
        if user is not None and session.get(SESSION_EPOCH) != user.session_epoch:
            user = None  # revoked: logged out elsewhere, password changed, or locked
        if user is not None and user.disabled_at is not None:
            user = None  # disabled: its sessions are over, whatever the epoch says
    g.staff = user
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


def _key(kind: str, email: str, ip: str | None) -> str:
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX", "")
    return f"{prefix}:staff-login:{kind}:{email_hash(email)}:{ip or '-'}"


def lockout_seconds_left(email: str, ip: str | None) -> int:
    """How long this account stays locked for this IP; 0 when it is not (or Redis cannot say)."""
    try:
        ttl = _redis().ttl(_key("lock", email, ip))
    except redis.RedisError as exc:
        log.warning("login lockout check skipped: Redis unavailable (%s)", exc)
        return 0
    return max(int(ttl), 0)  # type: ignore[arg-type]  # redis-py types a sync reply as maybe Awaitable


def record_failure(email: str, ip: str | None) -> bool:
    """Count a failed login for this account from this IP; True when that failure locked it."""
    cfg = current_app.config
    window = cfg["STAFF_LOCKOUT_WINDOW_SECONDS"]
    limit = cfg["STAFF_LOCKOUT_FAILURES"]
    fail_key = _key("fail", email, ip)
    try:
        pipe = _redis().pipeline()
        pipe.set(fail_key, 0, ex=window, nx=True)  # the window starts at the first failure
        pipe.incr(fail_key)
        failures = pipe.execute()[1]
        if failures >= limit:
            pipe = _redis().pipeline()
            pipe.set(_key("lock", email, ip), 1, ex=cfg["STAFF_LOCKOUT_SECONDS"])
            pipe.delete(fail_key)
            pipe.execute()
            log.warning("staff login locked after %d failures (account hash %s)",
                        failures, email_hash(email)[:12])
            return True
    except redis.RedisError as exc:
        log.warning("login failure not counted: Redis unavailable (%s)", exc)
    return False


def clear_failures(email: str, ip: str | None) -> None:
    try:
        _redis().delete(_key("fail", email, ip))
    except redis.RedisError as exc:
        log.warning("could not clear login failures: Redis unavailable (%s)", exc)
