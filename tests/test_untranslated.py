"""Nothing a person reads is left in English on a Spanish page or email: each public page and
each email of the registry is rendered in both languages, and a visible text (or a label a
screen reader speaks) that comes out the same in both is a string nobody marked for
translation, unless it is a name or data (the organisation's, an address, a number)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from alerts.actions import open_actions
from alerts.extensions import db
from alerts.models import Subscriber, utcnow
from tests.helpers import confirm_token_for, seed_actions, unsubscribe_token_for

SPOKEN_ATTRIBUTES = ("placeholder", "aria-label", "title", "alt")
# Words that are the same in both languages, or names: never a sign of a forgotten string.
SAME_IN_BOTH = {"English", "Español", "OK", "Email", "ECDFA", "LGBTQ+", "(JSON)", "Facebook", "X", "Bluesky",
                "WhatsApp", "LinkedIn"}
_DATA = re.compile(r"^(\S+@\S+\.\w+|Error \d{3}|[\d\s.,:%/+-]+)$")  # an address, a status code, figures
_WORD = re.compile(r"[A-Za-z]{3,}")


class _Texts(HTMLParser):
    """The visible texts of a page (not scripts or styles) and the labels it speaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "code"):
            self._skip += 1
        named = dict(attrs)
        for name in SPOKEN_ATTRIBUTES:
            if named.get(name):
                self.texts.append(str(named[name]))
        if tag == "input" and named.get("type") in ("submit", "button") and named.get("value"):
            self.texts.append(str(named["value"]))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "code") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.texts.append(data)


def texts_of(page: str) -> set[str]:
    parser = _Texts()
    parser.feed(page)
    return {" ".join(t.split()) for t in parser.texts}


def untranslated(english: str, spanish: str, data: set[str]) -> list[str]:
    """The texts the two renderings share that are words, not data."""
    same = texts_of(english) & texts_of(spanish)
    return sorted(t for t in same if _WORD.search(t) and t not in SAME_IN_BOTH and not _DATA.match(t)
                  and not any(t in d or d in t for d in data if len(d) > 3))


@pytest.fixture
def people(app):
    """The seed actions, a confirmed and a pending subscriber: the links every page needs."""
    with app.app_context():
        seed_actions()
        sub = Subscriber(email="ana@example.org", status="confirmed", confirmed_at=utcnow())
        pending = Subscriber(email="ben@example.org", status="pending", confirm_nonce="n" * 32)
        db.session.add_all([sub, pending])
        db.session.commit()
        actions = open_actions()
        pledge = next(a for a in actions if a.kind == "pledge")
        cfg = app.config
        data = {cfg["ORG_NAME"], cfg["ORG_POSTAL_ADDRESS"], "ana@example.org", "ben@example.org"}
        return {
            "unsubscribe": f"/unsubscribe/{unsubscribe_token_for(sub.id)}",
            "confirm": f"/confirm/{confirm_token_for(pending.id, pending.confirm_nonce)}",
            "petition": actions[0].slug, "pledge": pledge.slug, "data": data,
        }


PAGES = [
    "/", "/actions/{petition}", "/actions/{pledge}", "/actions/{petition}/thanks",
    "{confirm}", "{unsubscribe}", "{unsubscribe}/erase", "/no-such-page", "/unsubscribe/not-a-token",
    "/confirm/not-a-token", "/actions/confirm/not-a-token",
]


@pytest.mark.parametrize("path", PAGES)
def test_a_public_page_leaves_nothing_in_english(app, client, people, path):
    url = path.format(**people)
    english = client.get(url, query_string={"lang": "en"}).get_data(as_text=True)
    spanish = client.get(url, query_string={"lang": "es"}).get_data(as_text=True)
    assert '<html lang="es"' in spanish
    left = untranslated(english, spanish, people["data"])
    assert not left, f"{url}: the same in English and Spanish (not marked for translation?): {left}"


@pytest.mark.parametrize("path", ["/embed/signup", "/embed/actions/{petition}"])
def test_an_embedded_form_leaves_nothing_in_english(app, client, people, path, monkeypatch):
    monkeypatch.setitem(app.config, "EMBED_ORIGINS", ("https://www.example.org",))
    url = path.format(**people)
    english = client.get(url, query_string={"lang": "en"}).get_data(as_text=True)
    spanish = client.get(url, query_string={"lang": "es"}).get_data(as_text=True)
    left = untranslated(english, spanish, people["data"])
    assert not left, f"{url}: the same in English and Spanish: {left}"


def test_a_refused_signup_leaves_nothing_in_english(app, client, people):
    def refused(lang: str) -> str:
        page = client.get("/", query_string={"lang": lang}).get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        resp = client.post(f"/subscribe?lang={lang}", data={
            "csrf_token": token, "email": "not an address", "postal_code": "10$01", "website": "",
            "language": lang})
        assert resp.status_code == 400
        return resp.get_data(as_text=True)

    left = untranslated(refused("en"), refused("es"), people["data"])
    assert not left, f"the refused signup: {left}"


def test_the_detector_finds_a_string_nobody_marked(app, client, people, monkeypatch):
    """The check itself: a page with one English sentence nobody marked is caught."""
    loader = app.jinja_env.loader
    assert loader is not None
    source = loader.get_source(app.jinja_env, "subscribe_done.html")[0]
    marked = source.replace("{% block body %}", "{% block body %}<p>Forgotten sentence here</p>", 1)
    assert marked != source
    english = app.jinja_env.from_string(marked)
    with app.test_request_context("/subscribe?lang=en"):
        en = english.render()
    with app.test_request_context("/subscribe?lang=es"):
        es = english.render()
    assert untranslated(en, es, people["data"]) == ["Forgotten sentence here"]
