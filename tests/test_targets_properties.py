"""Property tests for the readers of a letter's or call's targets: any line staff type, and any
bytes uploaded as a CSV file, give targets that read back as themselves, or the one error the
staff form shows (TargetError), never anything else."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.actions import targets
from tests.budgets import examples

FIXTURE_OK = [HealthCheck.function_scoped_fixture]
NAME = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
ADDRESS = st.one_of(st.emails(), st.text(max_size=40))
PHONE = st.one_of(st.from_regex(r"\+1 ?[2-9]\d{2} ?[2-9]\d{2} ?\d{4}", fullmatch=True), st.text(max_size=25))
LINE = st.one_of(
    st.text(max_size=300),
    st.builds(lambda n, t, a, p: f"{n}, {t} <{a}>{' [placeholder]' if p else ''}", NAME, NAME, ADDRESS,
              st.booleans()),
    st.builds(lambda n, t, a, p: f"{n}, {t} tel:{a}{' [placeholder]' if p else ''}", NAME, NAME, PHONE,
              st.booleans()),
)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=FIXTURE_OK)
@given(line=LINE, kind=st.sampled_from(["letter", "call", "petition"]))
def test_any_target_line_reads_back_as_itself_or_is_refused(ctx, line, kind):
    try:
        target = targets.parse(line, kind)
    except targets.TargetError as exc:
        assert str(exc)  # what the form shows at the field
        return
    assert kind in ("letter", "call") and target.name and len(target.name) <= 200
    assert (target.email is not None) == (kind == "letter") and (target.phone is not None) == (kind == "call")
    for value in (target.name, target.title):
        assert value == " ".join(value.split())  # one line: nothing can break a header or a cell
    assert targets.parse(targets.line_of(target), kind) == target


@settings(max_examples=examples(200), deadline=None, suppress_health_check=FIXTURE_OK)
@given(data=st.one_of(st.binary(max_size=2000),
                      st.lists(st.tuples(NAME, NAME, ADDRESS, st.sampled_from(["", "yes", "no"])), max_size=8)
                      .map(lambda rows: ("name,title,email,placeholder\n" + "".join(
                          ",".join('"' + c.replace('"', '""') + '"' for c in row) + "\n" for row in rows))
                          .encode())))
def test_any_uploaded_file_gives_targets_or_one_error(ctx, data):
    try:
        found = targets.read_csv(io.BytesIO(data), "letter")
    except targets.TargetError as exc:
        assert str(exc)
        return
    assert len(found) <= targets.MAX_TARGETS
    assert len({t.email.lower() for t in found if t.email}) == len(found)  # none twice
    for target in found:
        assert targets.parse(targets.line_of(target), "letter") == target


FORM_KEY = st.one_of(st.sampled_from(["note", "name", "outcome-"]), st.text(max_size=12),
                     st.builds(lambda s: f"outcome-{s}", st.one_of(st.integers(-5, 10**12).map(str),
                                                                     st.text(max_size=12))))
FORM_VALUE = st.one_of(st.sampled_from(["reached", "voicemail", "busy", "no-answer", ""]),
                       st.text(max_size=30))


@settings(max_examples=examples(300), deadline=None, suppress_health_check=FIXTURE_OK)
@given(data=st.data())
def test_any_posted_call_report_is_read_as_real_answers_or_refused(ctx, data):
    import sqlalchemy as sa

    from alerts.actions import calls
    from alerts.extensions import db
    from alerts.models import Action
    from tests.test_calls import SLUG, make_call

    action = db.session.scalar(sa.select(Action).where(Action.slug == SLUG)) or make_call()
    every = {t.id for t in targets.targets_of(action.id)}
    shown = {t.id for t in targets.real_targets(action.id)}  # the placeholder is not among them
    real_key = st.sampled_from(sorted(every)).map(lambda i: f"outcome-{i}")  # the page's own fields too
    form = data.draw(st.dictionaries(st.one_of(FORM_KEY, real_key), FORM_VALUE, max_size=6))
    report = calls.read_form(form)
    try:
        answered, note = calls.validate(action.id, report)
    except calls.CallError as exc:
        assert str(exc) and exc.field
        return
    assert answered and {tid for tid, _ in answered} <= shown
    assert all(outcome in calls.CALL_OUTCOMES for _, outcome in answered)
    assert note is None or (0 < len(note) <= 2000)
