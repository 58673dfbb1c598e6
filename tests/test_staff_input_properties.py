"""The staff side's new readers of outside text, fed anything: a second-factor code, the audit
trail's filters, `alerts audit --since`. Each answers or refuses; none raises or matches by luck."""

from __future__ import annotations

from datetime import datetime

import click
import pyotp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts import twofactor
from alerts.cli.audit import _since
from alerts.extensions import db
from alerts.models import StaffUser
from alerts.web.staff import audit_trail
from tests.budgets import examples
from tests.helpers import STAFF_EMAIL

T = 1_800_000_000.0
TEXT = st.one_of(st.text(max_size=40), st.from_regex(r"[0-9 -]{0,12}", fullmatch=True),
                 st.from_regex(r"[A-Za-z0-9]{5}-?[A-Za-z0-9]{5}", fullmatch=True))


@settings(max_examples=examples(300), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(code=TEXT)
def test_any_text_as_a_second_factor_is_refused_unless_it_is_the_code(app, staff, code):
    with app.app_context():
        user = db.session.scalar(db.select(StaffUser).where(StaffUser.email == STAFF_EMAIL))
        if not twofactor.enabled(user):
            secret = twofactor.new_secret()
            twofactor.enable(user, secret, pyotp.TOTP(secret).at(T), now=T)
            db.session.commit()
        assert user.totp_secret is not None
        totp = pyotp.TOTP(user.totp_secret)
        valid = {totp.at(T + d * 30) for d in (-1, 0, 1)}
        digits = "".join(c for c in code if not c.isspace())
        if digits in valid:
            return
        assert twofactor.verify(user, code, now=T) is False
        assert twofactor.use_recovery_code(user, code) is False
        db.session.rollback()


@settings(max_examples=examples(300), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(since=st.text(max_size=30), until=st.text(max_size=30), actor=st.text(max_size=300))
def test_the_audit_pages_filters_read_any_query_or_name_the_problem(app, since, until, actor):
    query = {"since": since, "until": until, "actor": actor}
    with app.test_request_context("/staff/audit", query_string=query):
        filters, args, errors = audit_trail._filters()
    assert all("YYYY-MM-DD" in e for e in errors)
    assert len(args["actor"]) <= 200
    for when in (filters.since, filters.until):
        assert when is None or when.tzinfo is not None


@settings(max_examples=examples(300), deadline=None)
@given(value=st.one_of(st.text(max_size=40), st.datetimes().map(datetime.isoformat)))
def test_alerts_audit_since_reads_an_iso_time_or_refuses_naming_the_format(value):
    try:
        when = _since(value)
    except click.BadParameter as exc:
        assert "ISO 8601" in str(exc)
        return
    assert when is None or when.tzinfo is not None


def test_the_code_step_compares_the_code_a_browser_sends(app, staff):
    """The property above relies on verify taking the digits as typed: spaces are the app's grouping."""
    with app.app_context():
        user = db.session.scalar(db.select(StaffUser).where(StaffUser.email == STAFF_EMAIL))
        secret = twofactor.new_secret()
        twofactor.enable(user, secret, pyotp.TOTP(secret).at(T), now=T)
        code = pyotp.TOTP(secret).at(T + 30)
        assert twofactor.verify(user, f"{code[:3]} {code[3:]}", now=T + 30) is True
