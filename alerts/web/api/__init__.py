"""The REST API under /api/v1/: flask-smorest on the app's own Flask object.

flask-smorest was chosen for working with a plain Flask app and Blueprint (apiflask wants
its own APIFlask class for its blueprints to be documented), marshmallow schemas that
validate and document at once, keyset pages and ETags left to the views, and OpenAPI 3.1.
Its own error handler is not installed: alerts/web/errors.py answers every error under
/api/ as application/problem+json.
"""

from __future__ import annotations

import http
from typing import Any

from flask import Blueprint, Flask, current_app, render_template
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from ...extensions import csrf
from . import schemas, views
from .problems import PROBLEM_MEDIA_TYPE

API_PREFIX = "/api/v1"


class _Api(Api):
    ERROR_SCHEMA = schemas.Problem

    def _register_error_handlers(self) -> None:
        """Not smorest's JSON errors: the app's problem+json handler (web/errors.py) answers."""

    def _register_responses(self) -> None:
        """Every error documented as what it is: an RFC 9457 problem, application/problem+json."""
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = schemas.Problem
            prepare_response(response, self.spec, PROBLEM_MEDIA_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "An error: an RFC 9457 problem", "schema": schemas.Problem}
        prepare_response(default, self.spec, PROBLEM_MEDIA_TYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, default, lazy=True)


pages = Blueprint("api_pages", __name__, url_prefix=API_PREFIX)


def docs() -> str:
    """The API's reference, rendered on the server from the OpenAPI document (no script, no CDN)."""
    spec: dict[str, Any] = current_app.extensions["alerts-api"].spec.to_dict()
    return render_template("api_docs.html", spec=spec)


pages.add_url_rule("/docs", "docs", docs, methods=("GET",))


def register(app: Flask) -> None:
    app.config.update(
        API_TITLE="Action Alerts API", API_VERSION="v1", OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX=API_PREFIX, OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {"description": "Subscribers, actions and signatures, alerts and audiences for "
                                    "the organisation's own systems. Errors are application/problem+json."},
            "servers": [{"url": app.config["BASE_URL"]}],
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        },
    )
    api = _Api(app)
    api.register_blueprint(views.blp)
    csrf.exempt(views.blp)
    app.register_blueprint(pages)
    app.extensions["alerts-api"] = api
