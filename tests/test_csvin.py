"""The one CSV reader behind both imports: hostile files are an error naming the line, never a 500."""

from __future__ import annotations

import io
import re

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts import csvin
from alerts.actions import records, signing
from alerts.extensions import db
from alerts.models import Action, Signature, Subscriber
from alerts.subscribers import importing
from tests.budgets import examples
from tests.helpers import csrf_token, seed_actions
from tests.test_security import multipart

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
HUGE = "x" * (csvin.FIELD_MAX + 1)


def _rikers() -> Action:
    return db.session.scalar(sa.select(Action).where(Action.slug == RIKERS))


def _signatures() -> set[str]:
    db.session.rollback()
    return set(db.session.scalars(sa.select(Signature.email_key)))


@pytest.fixture
def action(app, ctx):
    seed_actions()
    return _rikers()


# -- the reader on its own ---------------------------------------------------------------------


def _read(data: bytes, key: int | None = 0) -> list[csvin.Record]:
    table = csvin.open_table(io.BytesIO(data), key_of=None if key is None else (lambda header: key))
    return list(table.records())


def test_a_closed_multi_line_value_is_one_row_and_an_open_quote_rereads_the_rows_below():
    closed = _read(b'email,note\na@example.org,"one\ntwo"\nb@example.org,x\n')
    assert [(r.line, r.end, r.cells, r.unclosed) for r in closed] == [
        (2, 3, ["a@example.org", "one\ntwo"], False), (4, 4, ["b@example.org", "x"], False)]
    opened = _read(b'email,note\n"a@example.org,x\nb@example.org,y\nc@example.org,z\n')
    assert [(r.line, r.end, r.unclosed) for r in opened] == [(2, 4, True), (3, 3, False), (4, 4, False)]
    assert opened[0].text == '"a@example.org,x\n' and opened[1].cells == ["b@example.org", "y"]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "the file is empty"),
    (b"\n\n", "no header row"),
    (b"email\na@example.org\nJos\xe9@example.org\n", "line 3 is not UTF-8"),
    (b"email\na@exam\x00ple.org\n", "line 2 holds a NUL character"),
    (b"email\na@example.org\nb@example.org," + HUGE.encode() + b"\n",
     "line 3 has a value longer than 131,072"),
    (b'email\n"' + HUGE.encode() + b'"\n', "line 2 has a value longer than 131,072"),
])
def test_a_file_that_cannot_be_read_names_the_line_and_the_problem(data, message):
    with pytest.raises(csvin.CsvFileError, match=re.escape(message)):
        _read(data)


def test_an_open_quote_that_swallows_more_than_the_field_limit_is_one_bad_row():
    rows = b"".join(b"r%06d@example.org,ok\n" % i for i in range(6000))
    found = _read(b'email,note\n"stray@example.org,x\n' + rows)
    assert found[0].unclosed and found[0].line == 2
    assert len(found) == 6001 and all(not r.unclosed for r in found[1:])


_PIECES = st.sampled_from(['"', ",", ";", "\t", "\n", "\r", "\r\n", " ", "a", "b@example.org",
                           "\x00", "é", '""', "\ufeff"])


@settings(max_examples=examples(50), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(body=st.lists(_PIECES, max_size=60), raw=st.sampled_from([b"", b"\xff", b"\xc3", HUGE.encode()]),
       at=st.integers(min_value=0, max_value=60))
def test_hostile_input_is_read_or_refused_and_no_line_is_dropped_in_silence(body, raw, at):
    """Any bytes: the reader's own error, or rows that account for every line holding anything."""
    text = "email,note\n" + "".join(body)
    data = text.encode()
    cut = min(at, len(data))
    data = data[:cut] + raw + data[cut:]
    try:
        found = _read(data)
    except csvin.CsvFileError as exc:
        assert re.match(r"(line \d+ |the file )", str(exc)), exc
        return
    covered: set[int] = set()
    for record in found:
        covered |= {record.line} if record.unclosed else set(range(record.line, record.end + 1))
    assert [r.line for r in found] == sorted({r.line for r in found})
    lines = re.split(r"(?<=\n)|(?<=\r)(?!\n)", data.decode("utf-8").removeprefix("\ufeff"))
    for number, line in enumerate((x for x in lines if x), start=1):
        if number > 1 and line.strip(' \t\r\n,;"'):
            assert number in covered, (number, line, found)


# -- the subscriber import ---------------------------------------------------------------------


def test_a_closed_multi_line_source_is_one_row_counted_once(app, ctx):
    data = b'email,source\na@example.org,"Paper petition,\nPride march"\nb@example.org,Fair\n'
    report = importing.import_file(io.BytesIO(data), consent="documented", source="Fallback")
    assert (report.rows, report.created, report.problems) == (2, 2, [])
    db.session.rollback()
    sources = dict(db.session.execute(sa.select(Subscriber.email, Subscriber.source)).all())
    assert sources == {"a@example.org": "Paper petition, Pride march", "b@example.org": "Fair"}


def test_subscriber_import_refuses_a_nul_naming_its_line(app, ctx):
    with pytest.raises(importing.ImportFileError, match="line 3 holds a NUL"):
        importing.import_file(io.BytesIO(b"email\na@example.org\nb\x00@example.org\n"),
                              consent="documented", source="Fair")
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0


# -- the signer import ---------------------------------------------------------------------------


def test_signer_import_rereads_the_rows_after_an_unclosed_quote(app, action, tmp_path):
    path = tmp_path / "signers.csv"
    path.write_text('email,name\n"ann@example.org,Ann\nbob@example.org,Bob\ncy@example.org,Cy\n')
    result = app.test_cli_runner().invoke(args=["action", "import-signatures", RIKERS, str(path)])
    assert result.exit_code == 0, result.output
    assert "2 added, 0 already signed, 1 rejected" in result.output
    assert "line 2: a quote (\") opens in this row and is never closed" in result.output
    assert _signatures() == {"bob@example.org", "cy@example.org"}


def test_signer_import_counts_lines_not_records(app, action):
    data = b'email,comment\na@example.org,"one\ntwo"\nnot-an-address,x\n'
    report = records.import_signers(_rikers(), io.BytesIO(data))
    assert report.added == 1 and report.rejected == [(4, "not-an-address", "invalid email")]


@pytest.mark.parametrize(("data", "message"), [
    (b"email,comment\na@example.org,ok\nb@example.org," + HUGE.encode() + b"\n",
     "line 3 has a value longer than 131,072 characters"),
    (b"email\na@example.org\nb@exa\x00mple.org\n", "line 3 holds a NUL character"),
])
def test_signer_cli_refuses_an_unreadable_file_in_one_line(app, action, tmp_path, data, message):
    path = tmp_path / "signers.csv"
    path.write_bytes(data)
    result = app.test_cli_runner().invoke(args=["action", "import-signatures", RIKERS, str(path)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert message in result.output and "nothing was imported" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert _signatures() == set()



@pytest.mark.parametrize(("data", "shown"), [
    (b"email\na@example.org\n\"" + HUGE.encode() + b"\"\n", "line 3 has a value longer than 131,072"),
    (b"email\na@example.org\nb\xff@example.org\n", "line 3 is not UTF-8"),
])
def test_staff_signer_upload_of_an_unreadable_file_is_a_400_showing_why(app, seeded_staff_client, data,
                                                                       shown):
    with app.app_context():
        action_id = _rikers().id
    page = f"/staff/actions/{action_id}/signatures"
    response = seeded_staff_client.post(f"{page}/import", content_type="multipart/form-data", data={
        "file": (io.BytesIO(data), "signers.csv"), "csrf_token": csrf_token(seeded_staff_client, page)})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and shown in html and "nothing was imported" in html
    with app.app_context():
        assert signing.count(action_id) == 0


def test_staff_signer_upload_takes_a_file_as_large_as_the_subscriber_import(app, seeded_staff_client,
                                                                           monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 160 * 1024)  # past it, as past 1 MB
    with app.app_context():
        action_id = _rikers().id
    rows = "".join(f"signer{i:06d}@example.org,Signer {i}\n" for i in range(5_000))
    assert len(rows) > app.config["MAX_CONTENT_LENGTH"]
    page = f"/staff/actions/{action_id}/signatures"
    body = ("email,name\n" + rows).encode()
    response = seeded_staff_client.post(f"{page}/import", **multipart(  # (encoded here: see multipart)
        {"csrf_token": csrf_token(seeded_staff_client, page)}, {"file": (body, "signers.csv")}))
    assert response.status_code == 200, response.status_code
    assert "5000 added, 0 already signed, 0 rejected" in response.get_data(as_text=True)


def test_a_file_over_the_row_limit_is_refused_naming_the_line(monkeypatch):
    monkeypatch.setattr(csvin, "ROWS_MAX", 3)
    assert len(_read(b"email\na@x.org\n\nb@x.org\n\"c@x.org\n")) == 3  # blank lines are no rows
    with pytest.raises(csvin.CsvFileError, match="line 6: the file has more than 3 rows"):
        _read(b"email\na@x.org\nb@x.org\n\n\"c@x.org\nd@x.org\n")
