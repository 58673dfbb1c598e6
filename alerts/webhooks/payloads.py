"""What each event's `data` says: the same fields wherever the event is emitted."""

from __future__ import annotations

from typing import Any

from ..models import Subscriber


def subscriber(sub: Subscriber, **extra: Any) -> dict[str, Any]:
    """A subscriber as `subscriber.*` events and the API describe them."""
    return {"id": sub.id, "email": sub.email, "status": str(sub.status), "source": sub.source,
            "first_name": sub.first_name, "last_name": sub.last_name, "postal_code": sub.postal_code,
            "phone": sub.phone, "language": sub.language,
            "confirmed_at": sub.confirmed_at, "unsubscribed_at": sub.unsubscribed_at, **extra}


def erased(subscriber_id: int) -> dict[str, Any]:
    """An erasure says whom by id alone: nothing personal outlives it, here either."""
    return {"id": subscriber_id}
