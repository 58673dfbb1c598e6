"""What every email may say about where it comes from: absolute links and the organisation."""

from __future__ import annotations

from flask import current_app, url_for


def external_url(endpoint: str, **values: str) -> str:
    """Links in emails use BASE_URL, never the host of whatever request is running."""
    with current_app.test_request_context(base_url=current_app.config["BASE_URL"]):
        return url_for(endpoint, _external=True, **values)


def org_context() -> dict:
    cfg = current_app.config
    return {
        "org_name": cfg["ORG_NAME"],
        "org_postal_address": cfg["ORG_POSTAL_ADDRESS"],
        "base_url": cfg["BASE_URL"],
    }
