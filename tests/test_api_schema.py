"""Schemathesis against the API's own OpenAPI document, in-process over WSGI: with bounded
examples per operation, no answer is a 500 and every answer matches the document (status
codes, media types, headers and bodies)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from alerts import apitokens
from alerts.extensions import db
from tests.helpers import add_confirmed, make_alert, seed_actions

pytestmark = pytest.mark.slow  # about 11 s: CI runs it, the fast subset does not

EXAMPLES = 40  # per operation: about 11 s in all


@pytest.fixture
def api_token(app, ctx, monkeypatch) -> str:
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "100000/minute")
    seed_actions()
    add_confirmed(3, prefix="schema")
    make_alert("Schema test")
    _row, plain = apitokens.create("schemathesis", ["read", "write"], created_by="cli")
    db.session.commit()
    return plain


def test_api_conforms_to_its_openapi_document(app, api_token):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {api_token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            # Every check but "schema-valid data is accepted": the domain's rules go past the
            # schema (an address's syntax, a suppressed address, a closed action: 409, 422).
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()
