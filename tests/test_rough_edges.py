"""What a new user met in their first hour: wording, defaults and small logic, each held here."""

from __future__ import annotations

import sqlalchemy as sa

from alerts.blasts import compose
from alerts.extensions import db
from alerts.models import Alert
from tests.helpers import blasts, make_alert, post

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
DETENTION = "detention-is-no-place-for-a-child"


def _sent(alert_id: int, state: str = "sent") -> None:
    db.session.execute(sa.update(Alert).where(Alert.id == alert_id).values(state=state))
    db.session.commit()


def test_reminding_a_reminder_does_not_double_the_prefix(app, staff_client):
    with app.app_context():
        first = make_alert(subject="Close Rikers", slugs=[RIKERS])
        blasts.start_blast(first)
        _sent(first)
        again = compose.reminder(first, minus_clickers=False)
        db.session.commit()
        assert again.subject == "Reminder: Close Rikers"
        _sent(again.id)
        third = compose.reminder(again.id, minus_clickers=False)
        db.session.commit()
        assert third.subject == "Reminder: Close Rikers"
        _sent(third.id)
        third_id = third.id
    page = staff_client.get(f"/staff/alerts/{third_id}").get_data(as_text=True)
    assert 'value="Reminder: Close Rikers"' in page and "Reminder: Reminder" not in page


def test_remind_is_offered_only_once_the_blast_has_finished(app, staff_client):
    with app.app_context():
        alert_id = make_alert(subject="Close Rikers", slugs=[RIKERS])
        blasts.start_blast(alert_id)  # sending, 0% so far
    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert "Remind those who did not act" not in page
    refused = post(staff_client, f"/staff/alerts/{alert_id}/remind", {"subject": "Too soon"},
                   page=f"/staff/alerts/{alert_id}")
    assert refused.status_code == 303
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)
                                 .where(Alert.parent_id == alert_id)) == 0
        _sent(alert_id)
    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert "Remind those who did not act" in page


def test_the_audience_sentence_says_except_those_who_once(app):
    from alerts import audiences

    with app.app_context():
        earlier = make_alert(slugs=[RIKERS])
        rules = audiences.parse({"except_signers_of": [RIKERS], "except_clickers_of": earlier,
                                 "joined_after": "2026-01-01"})
        words = audiences.describe(rules, [1])
    assert words.count("except those who") == 1
    assert words == ("everyone confirmed, who joined on or after 2026-01-01, except those who signed "
                     f"Call on Mayor Adams to Follow the Law and Close Rikers Island, who clicked in alert {earlier} "
                     "or who already signed all this alert's actions")
