"""Property tests for the readers of people's input: any text as a field's value, a profile,
a greeting's value, a greeting in staff's text or an import's header row is either kept in
its one spelling or refused with the error each caller shows, never anything else."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.blasts import personal
from alerts.subscribers import fields, people
from alerts.subscribers.fields import KINDS, FieldDef
from alerts.subscribers.import_columns import resolve_columns
from alerts.subscribers.import_report import ImportFileError
from tests.budgets import examples

CHOICES = ("Bronx", "Queens", "Staten Island")
TEXT = st.text(max_size=600)
RAW = st.one_of(TEXT, st.booleans(), st.none(), st.lists(st.text(max_size=40), max_size=5))
FIXTURE_OK = [HealthCheck.function_scoped_fixture]


@settings(max_examples=examples(300), deadline=None)
@given(kind=st.sampled_from(KINDS), raw=RAW)
def test_any_value_is_kept_in_one_spelling_or_refused(kind, raw):
    fdef = FieldDef("f", "The field", kind, CHOICES)
    try:
        kept = fields.clean_value(fdef, raw)
    except ValueError as exc:
        assert str(exc)  # what the form shows next to the field
        return
    assert len(kept) <= (len(CHOICES) if kind == "choices" else 1)
    for value in kept:
        assert value and value == " ".join(value.split()) and len(value) <= fields.VALUE_MAX
        assert not re.search(r"[\x00-\x1f\x7f]", value)
    if kind in ("choice", "choices"):
        assert set(kept) <= set(CHOICES)
    assert fields.clean_value(fdef, kept) == kept  # a kept value reads back as itself


@settings(max_examples=examples(200), deadline=None, suppress_health_check=FIXTURE_OK)
@given(first=TEXT, postal=st.text(max_size=40), phone=st.text(max_size=40), language=st.text(max_size=10))
def test_any_profile_is_kept_or_refused_by_field(ctx, first, postal, phone, language):
    given_ = {"first_name": first, "postal_code": postal, "phone": phone, "language": language}
    try:
        kept = people.clean_profile(given_)
    except people.ProfileError as exc:
        assert exc.errors and set(exc.errors) <= set(given_)
        return
    assert kept["phone"] is None or re.fullmatch(r"\+[1-9]\d{4,14}", kept["phone"])
    assert kept["first_name"] is None or len(kept["first_name"]) <= 100


@settings(max_examples=examples(300), deadline=None)
@given(value=st.one_of(TEXT, st.lists(st.text(max_size=40), max_size=4), st.none(), st.integers()))
def test_a_greetings_value_is_one_header_safe_line(value):
    line = personal.clean(value)
    assert line == line.strip()
    assert not any(ch.isspace() and ch != " " for ch in line)  # no CR, LF or other break
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", line)


@settings(max_examples=examples(300), deadline=None)
@given(text=st.text(alphabet=st.sampled_from("{}|\\[]()<>:_ aZfirst_name\n"), max_size=80))
def test_any_staff_text_with_braces_reads_without_error(text):
    tokens = personal.tokens_in(text, intro=text)
    assert all(personal.TOKEN.fullmatch("{" + t.key + ("|" + t.fallback if t.fallback else "") + "}")
               for t in tokens if "\n" not in t.fallback)
    assert len({t.slot for t in tokens}) == len(tokens)
    personal.line_with_slots(text)
    personal.markdown_with_slots(text)


@settings(max_examples=examples(300), deadline=None)
@given(header=st.lists(st.text(max_size=30), max_size=12))
def test_any_header_row_maps_each_column_once_or_is_refused(header):
    try:
        columns = resolve_columns(header)
    except ImportFileError as exc:
        assert "email" in str(exc)
        return
    used = list(columns.at.values())
    assert len(used) == len(set(used))
    assert sorted(used + [i for i, _ in columns.unmapped]) == list(range(len(header)))
