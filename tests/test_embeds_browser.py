"""The embedded forms in a real browser, on another site: a host page at http://localhost:B
(another site than the app's http://127.0.0.1:A) places the signup form and a petition with
embed.js; with third-party cookies blocked a visitor signs up and signs through the frames;
a site not in EMBED_ORIGINS cannot frame them, and its post is refused. Screenshots at 1280
and 390 px of the host page."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from alerts.extensions import db
from alerts.models import Signature, SignupAttempt, Subscriber
from tests.helpers import seed_actions
from tests.plugins import browsers

pytestmark = pytest.mark.slow

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
# Chromium's switch for blocking third-party cookies (what browsers do by default now or soon).
NO_THIRD_PARTY_COOKIES = "--test-third-party-cookie-phaseout"

HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Partner site: our campaign</title>
<style>body {{ font-family: Georgia, serif; margin: 0; background: #f4f1ea; color: #222; }}
header {{ background: #3b2f2f; color: #fff; padding: 18px 24px; }}
main {{ max-width: 760px; margin: 0 auto; padding: 16px; }}
.card {{ background: #fff; padding: 12px; border-radius: 8px; margin: 18px 0; }}</style></head>
<body><header><strong>Partner Org</strong> · Standing up for kids</header>
<main><h1>Join the campaign</h1><p>Our partner's forms, placed with one tag each.</p>
<section class="card"><h2>Get the alerts</h2>
<script src="{app}/embed.js" data-form="signup" data-source="partner-news" async></script></section>
<section class="card"><h2>Sign the petition</h2>
<script src="{app}/embed.js" data-action="{slug}" data-source="partner-news" async></script></section>
<p>Thank you for standing with us.</p></main></body></html>"""


class HostSite:
    """A plain web server standing in for another organisation's website."""

    def __init__(self, page: str) -> None:
        body = page.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802  (the stdlib's name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Recorder:
    """Every request the app gets, with its Cookie and Origin headers and the answer's status."""

    def __init__(self, app) -> None:
        self.inner = app.wsgi_app
        self.seen: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        entry = {"method": environ["REQUEST_METHOD"], "path": environ.get("PATH_INFO", ""),
                 "cookie": environ.get("HTTP_COOKIE"), "origin": environ.get("HTTP_ORIGIN"), "status": None}

        def recording_start(status, headers, *rest):
            entry["status"] = int(status.split()[0])
            return start_response(status, headers, *rest)

        with self.lock:
            self.seen.append(entry)
        return self.inner(environ, recording_start)

    def embed_requests(self) -> list[dict]:
        with self.lock:
            return [e for e in self.seen if e["path"].startswith("/embed")]


@pytest.fixture(scope="module")
def strict_browser() -> Iterator[object]:
    """Chromium with third-party cookies blocked."""
    browsers._require_chromium()
    from playwright.sync_api import sync_playwright

    expect.set_options(timeout=browsers.TIMEOUT_MS)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=browsers.CHROMIUM, headless=True,
                                      args=[*browsers.CHROMIUM_ARGS, NO_THIRD_PARTY_COOKIES])
        try:
            yield chromium
        finally:
            chromium.close()


def _wait(check, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _frame(page, path: str):
    deadline = time.monotonic() + browsers.TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        for frame in page.frames:
            if path in frame.url:
                return frame
        time.sleep(0.05)
    raise AssertionError(f"no frame of {path} on the page: {[f.url for f in page.frames]}")


def test_a_visitor_signs_up_and_signs_through_embeds_on_another_site(
    app, live_server, celery_worker, smtp, strict_browser, monkeypatch, shots
):
    host = HostSite(HOST_PAGE.format(app=live_server.url, slug=RIKERS))
    foreign = HostSite(HOST_PAGE.format(app=live_server.url, slug=RIKERS))  # same site, another origin
    recorder = Recorder(app)
    monkeypatch.setattr(app, "wsgi_app", recorder)
    monkeypatch.setitem(app.config, "BASE_URL", live_server.url)
    monkeypatch.setitem(app.config, "EMBED_ORIGINS", (host.url,))
    monkeypatch.setitem(app.config, "EMBED_POW_MAX_NUMBER", 20_000)
    with app.app_context():
        seed_actions()
    page = browsers.new_page(strict_browser)
    try:
        # The visitor has been on the app's own site before: its cookies are in the browser.
        page.goto(live_server.url + "/")
        page.context.add_cookies([{"name": "probe", "value": "1", "url": live_server.url, "sameSite": "Lax"}])
        page.goto(live_server.url + "/")
        assert any(e["path"] == "/" and e["cookie"] for e in recorder.seen), "control: a first-party cookie"

        page.goto(host.url + "/")
        signup = _frame(page, "/embed/signup")
        petition = _frame(page, f"/embed/actions/{RIKERS}")
        frames = page.locator("iframe")
        expect(frames).to_have_count(2)
        assert frames.nth(0).get_attribute("title") == "Sign up for action alerts"
        assert frames.nth(1).get_attribute("title") == "Sign the petition"
        # The frames report their height and embed.js keeps it (the defaults are 300 and 620 px).
        page.wait_for_function("() => [...document.querySelectorAll('iframe')].every("
                               "f => f.style.height && !['300px', '620px'].includes(f.style.height))")
        # A height message from anywhere but the app (here: the host page itself) is ignored; the
        # sentinel posted after it arrives once the forged one has been handled.
        forged_height = page.evaluate("""() => new Promise(done => {
            window.addEventListener('message', e => { if (e.data === 'sentinel') done(
                document.querySelector('iframe').style.height); });
            window.postMessage({type: 'alerts-embed:height', frame: 'f1', height: 5}, '*');
            window.postMessage('sentinel', '*');
        })""")
        assert forged_height != "5px"
        expect(signup.get_by_role("heading", name="Get action alerts")).to_be_visible()
        expect(petition.get_by_role("button", name="Sign the Petition")).to_be_visible()
        page.screenshot(path=shots / "host-page-1280.png", full_page=True)

        signup.get_by_label("Email address").fill("visitor@example.org")
        signup.get_by_role("button", name="Sign up").click()
        expect(signup.get_by_role("heading", name="Check your inbox")).to_be_visible()
        petition.get_by_label("Your name").fill("Vera Visitor")
        petition.get_by_label("Email address").fill("visitor@example.org")
        petition.get_by_role("button", name="Sign the Petition").click()
        expect(petition.get_by_role("heading", name="Thank you")).to_be_visible()
        page.screenshot(path=shots / "host-page-answers-1280.png", full_page=True)

        [mail] = smtp.handler.wait_for(1, timeout=30)
        assert mail.rcpt_tos == ["visitor@example.org"] and "confirm" in mail.subject.lower()
        with app.app_context():
            [signature] = db.session.scalars(sa.select(Signature)).all()
            assert (signature.email, signature.source, signature.source_code) == (
                "visitor@example.org", "embed", "partner-news")
            _wait(lambda: db.session.scalar(sa.select(Subscriber.source)) is not None
                  or bool(db.session.rollback()), "the signup's subscriber")
            assert db.session.scalar(sa.select(Subscriber.source)) == "partner-news"
        embeds = recorder.embed_requests()
        posts = [e for e in embeds if e["method"] == "POST"]
        assert len(posts) == 2 and {e["status"] for e in posts} == {200}
        assert {e["origin"] for e in posts} == {live_server.url}  # posted from inside the frames
        assert [e for e in embeds if e["cookie"]] == [], "a framed request carried a cookie"

        # A site not in EMBED_ORIGINS: the browser refuses to show the frames…
        refused: list[str] = []
        other = browsers.new_page(strict_browser)
        other.on("console", lambda msg: refused.append(msg.text) if "frame-ancestors" in msg.text else None)
        other.goto(foreign.url + "/")
        expect(other.locator("iframe")).to_have_count(2)
        _wait(lambda: len(refused) >= 2, "the browser's frame-ancestors refusals")
        assert not any("/embed/" in f.url and f.locator("form").count() for f in other.frames)
        # …and a post it makes in the visitor's name is refused by the app, writing nothing.
        before = len(recorder.seen)
        other.evaluate("""app => fetch(app + '/embed/signup', {method: 'POST', mode: 'no-cors',
                              body: new URLSearchParams({email: 'forged@example.org'})})""", live_server.url)
        _wait(lambda: any(e["method"] == "POST" and e["status"] for e in recorder.seen[before:]),
              "the forged post")
        [forged] = [e for e in recorder.seen[before:] if e["method"] == "POST"]
        assert (forged["origin"], forged["status"]) == (foreign.url, 403)
        with app.app_context():
            assert db.session.scalar(sa.select(sa.func.count()).select_from(SignupAttempt)
                                     .where(SignupAttempt.email == "forged@example.org")) == 0
        other.context.close()

        phone = browsers.new_page(strict_browser, phone=True)
        phone.goto(host.url + "/")
        _frame(phone, f"/embed/actions/{RIKERS}")
        phone.wait_for_function("() => [...document.querySelectorAll('iframe')].every("
                                "f => f.style.height && !['300px', '620px'].includes(f.style.height))")
        width = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], "the host page scrolls sideways at 390 px"
        phone.screenshot(path=shots / "host-page-390.png", full_page=True)
        phone.context.close()
    finally:
        page.context.close()
        host.close()
        foreign.close()
