"""Email rendering is a pure function of template and context: snapshot and structure tests."""

from __future__ import annotations

import email
import email.policy
import os
from pathlib import Path

import pytest

from alerts.mail.mime import build_message
from alerts.mail.rendering import compile_email, inline_css

SNAPSHOTS = Path(__file__).parent / "snapshots"
ORG = {"org_name": "Kids Org", "org_postal_address": "1 Test St, NY", "base_url": "https://x.org"}


def snapshot(name: str, actual: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(actual)
    assert actual == path.read_text(), f"{name} changed; rerun with UPDATE_SNAPSHOTS=1 if intended"


@pytest.fixture
def env(app):
    return app.jinja_env


def test_confirm_email_text_snapshot(env):
    compiled = compile_email(env, "confirm", ("confirm_url", "email"), **ORG)
    out = compiled.personalize(confirm_url="https://x.org/confirm/T0K3N", email="a@b.org")
    assert out.subject == "Confirm your subscription to Kids Org action alerts"
    snapshot("confirm.txt", out.text)


def test_confirm_email_html_is_inlined_and_slots_are_escaped(env):
    compiled = compile_email(env, "confirm", ("confirm_url", "email"), **ORG)
    out = compiled.personalize(confirm_url="https://x.org/c?a=1&b=<2>", email="a@b.org")
    assert 'href="https://x.org/c?a=1&amp;b=&lt;2&gt;"' in out.html
    assert "<2>" not in out.html
    assert 'class="button"' in out.html and 'style="' in out.html
    assert "XSLOTX" not in out.html + out.text + out.subject
    assert "https://x.org/c?a=1&b=<2>" in out.text  # the text part is not HTML-escaped
    assert "1 Test St, NY" in out.html and "1 Test St, NY" in out.text


def test_compiling_once_gives_the_same_output_as_rendering_each_time(env):
    compiled = compile_email(env, "confirm", ("confirm_url", "email"), **ORG)
    for addr in ("one@x.org", "two@x.org"):
        direct = compile_email(env, "confirm", (), confirm_url="https://u/1", email=addr, **ORG)
        assert compiled.personalize(confirm_url="https://u/1", email=addr).html == (
            direct.personalize().html
        )


def test_inline_css_moves_rules_into_style_attributes():
    html = inline_css("<html><head><style>p{color:red}</style></head><body><p>x</p></body></html>")
    assert '<p style="color:red">x</p>' in html


def test_built_message_parses_as_multipart_alternative_with_crlf():
    data = build_message(
        from_header='"Kids Org" <alerts@x.org>',
        to="a@b.org",
        subject="Ünïcode subject — with a dash",
        text="Hello\nA long line " + "word " * 40 + "\nend",
        html="<p>Hello ✓</p>",
        message_id="<1@x.org>",
        extra_headers=[("List-Id", "Kids <alerts.x.org>")],
    )
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF everywhere, no bare LF
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Subject"] == "Ünïcode subject — with a dash"
    assert msg["List-Id"] == "Kids <alerts.x.org>"
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert plain.startswith("Hello\nA long line word") and plain.endswith("\nend")
    assert msg.get_body(("html",)).get_content().strip() == "<p>Hello ✓</p>"


def test_header_injection_in_message_values_is_refused():
    with pytest.raises(ValueError):
        build_message(
            from_header="a@x.org", to="a@b.org\r\nBcc: x@y.org", subject="s", text="t", html="h",
            message_id="<1@x>",
        )
