"""Who sent this request, as a subscription's records keep it: one reading for every public view."""

from __future__ import annotations

from flask import request

from ..subscribers import subscriptions


def client_request(source: str = "web-form") -> subscriptions.Request:
    return subscriptions.Request(ip=request.remote_addr, user_agent=request.user_agent.string, source=source)
