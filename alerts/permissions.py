"""Staff roles and what each may do: the one table every staff route, command and page reads.

Roles are ordered, each holding every permission of the one before it: a viewer reads,
an editor also composes, a sender also sends, an admin also manages people's data and
staff accounts, and an owner also the integrations (API tokens, webhooks) and settings.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Role(enum.StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    SENDER = "sender"
    ADMIN = "admin"
    OWNER = "owner"


class Permission(enum.StrEnum):
    VIEW = "view"  # read every staff page and figure
    COMPOSE = "compose"  # draft alerts, edit actions, journeys and email texts, send tests
    SEND = "send"  # start, schedule, pause, resume, cancel and approve blasts
    DATA = "data"  # people's data: import, export, erase, suppressions
    STAFF = "staff"  # staff accounts: invite, change roles, disable, remove
    INTEGRATIONS = "integrations"  # API tokens, webhooks and settings


ROLES: tuple[Role, ...] = (Role.VIEWER, Role.EDITOR, Role.SENDER, Role.ADMIN, Role.OWNER)

GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.VIEW}),
    Role.EDITOR: frozenset({Permission.VIEW, Permission.COMPOSE}),
    Role.SENDER: frozenset({Permission.VIEW, Permission.COMPOSE, Permission.SEND}),
    Role.ADMIN: frozenset({Permission.VIEW, Permission.COMPOSE, Permission.SEND, Permission.DATA,
                           Permission.STAFF}),
    Role.OWNER: frozenset(Permission),
}

FIRST_ROLE = Role.OWNER  # the first account made
DEFAULT_ROLE = Role.EDITOR  # every later one, unless told

DESCRIPTIONS: dict[Role, str] = {
    Role.VIEWER: "reads everything staff can see; changes nothing",
    Role.EDITOR: "composes alerts, edits actions and email texts, sends tests",
    Role.SENDER: "also sends, schedules and approves alerts",
    Role.ADMIN: "also imports, exports and erases people's data, lifts suppressions, manages staff",
    Role.OWNER: "also API tokens, webhooks and settings",
}


class RoleError(ValueError):
    """A role or a STAFF_REQUIRE_2FA value that is not one we know (the message names it)."""


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise RoleError(f"unknown role {value!r}: choose from {', '.join(ROLES)}") from None


def allows(role: str | None, permission: Permission) -> bool:
    """True when `role` holds `permission`; an unknown or missing role holds nothing."""
    try:
        return permission in GRANTS[Role(role)] if role else False
    except ValueError:
        return False


def at_least(role: Role) -> frozenset[Role]:
    """This role and every role above it."""
    return frozenset(ROLES[ROLES.index(role):])


def parse_require_2fa(value: str) -> frozenset[Role]:
    """STAFF_REQUIRE_2FA: `senders` (sender, admin, owner), `all`, `none`, or a list of roles."""
    raw = value.strip().lower()
    if raw == "senders":
        return at_least(Role.SENDER)
    if raw == "all":
        return frozenset(ROLES)
    if raw in ("none", ""):
        return frozenset()
    names: Iterable[str] = (part for part in raw.replace(",", " ").split() if part)
    try:
        return frozenset(parse_role(name) for name in names)
    except RoleError as exc:
        raise RoleError(f"STAFF_REQUIRE_2FA: {exc} (or senders, all, none)") from None
