"""What the embedded forms' proof of work costs: a visitor's browser, a bot, and the server.

    python -m bench.embed_pow [--challenges 20] [--max-number 100000]

- **browser**: headless Chromium (Debian's) runs the forms' own solver (static/embed-frame.js,
  unchanged) on a form page holding a fresh challenge; wall milliseconds from the script's
  start until the hidden field holds the answer, median and p90 over the challenges.
- **floor (bot)**: the same challenges solved in Python by the `altcha` library
  (`altcha.v1.solve_challenge`, hashlib's SHA-256): what a bot pays per post at the least.
  The browser's figure is quoted as a ratio to it.
- **server**: what a form costs the app: making the challenge and the form token (the GET),
  checking both (the POST; the replay claim left out: no Redis here), in microseconds, beside
  one HMAC-SHA256 measured in the same run.
"""

from __future__ import annotations

import argparse
import hmac
import html
import json
import statistics
import time
from pathlib import Path

from altcha import v1 as altcha_v1

from bench.lib import BenchError
from bench.lib.harness import run_bench, table

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SOLVER = ROOT / "static" / "embed-frame.js"


def _cfg(max_number: int) -> dict:
    return {"SECRET_KEYS": ["bench-key"], "EMBED_POW_MAX_NUMBER": max_number, "EMBED_FORM_MAX_AGE": 7200,
            "REDIS_URL": None}


def _median_p90(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _browser(challenges: list[dict]) -> list[float]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise BenchError(f"needs Debian's Chromium at {CHROMIUM}")
    solver = SOLVER.read_text()
    took = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            current: dict[str, str] = {}
            # Served as http://localhost (a secure context, as the app's https pages are), from memory.
            page.route("http://localhost/form", lambda route: route.fulfill(
                status=200, content_type="text/html", body=current["body"]))
            for ch in challenges:
                attr = html.escape(json.dumps(ch), quote=True)
                current["body"] = (f'<!doctype html><body data-frame=""><form data-pow><input type="hidden" '
                                   f'name="altcha" value="" data-challenge="{attr}"></form></body>')
                page.goto("http://localhost/form")
                if not page.evaluate("window.isSecureContext"):
                    raise BenchError("the page is not a secure context: crypto.subtle is missing")
                start = time.perf_counter()
                page.add_script_tag(content=solver)
                page.wait_for_function("document.querySelector('input[name=altcha]').value !== ''",
                                       timeout=120_000, polling=5)
                took.append((time.perf_counter() - start) * 1000)
                payload = page.evaluate("document.querySelector('input[name=altcha]').value")
                ok, err = altcha_v1.verify_solution(payload, _hmac(ch), check_expires=True)
                if not ok:
                    raise BenchError(f"the browser's answer does not verify: {err}")
        finally:
            browser.close()
    return took


_KEY: dict[str, str] = {}


def _hmac(ch: dict) -> str:
    return _KEY["key"]


def run(args: argparse.Namespace, workdir: Path) -> dict:
    from alerts.embeds import formtokens, pow

    cfg = _cfg(args.max_number)
    _KEY["key"] = pow._hmac_key(cfg["SECRET_KEYS"][0])
    challenges = [pow.challenge(cfg) for _ in range(args.challenges)]
    python_ms = []
    for ch in challenges:
        start = time.perf_counter()
        altcha_v1.solve_challenge(ch["challenge"], ch["salt"], ch["algorithm"], ch["maxnumber"], 0)
        python_ms.append((time.perf_counter() - start) * 1000)
    browser_ms = _browser(challenges)

    rounds = 2000
    start = time.perf_counter()
    for _ in range(rounds):
        hmac.new(b"bench-key", b"x" * 64, "sha256").hexdigest()
    hmac_us = (time.perf_counter() - start) / rounds * 1e6
    start = time.perf_counter()
    for _ in range(rounds // 10):
        pow.challenge(cfg)
        formtokens.make_form_token(cfg, "signup")
    get_us = (time.perf_counter() - start) / (rounds // 10) * 1e6
    payloads = [pow.solve(ch) for ch in challenges[:5]]
    token = formtokens.make_form_token(cfg, "signup")
    start = time.perf_counter()
    for i in range(rounds // 10):
        pow.verify(cfg, payloads[i % len(payloads)])
        formtokens.check_form_token(cfg, token, "signup")
    post_us = (time.perf_counter() - start) / (rounds // 10) * 1e6

    b50, b90 = _median_p90(browser_ms)
    p50, p90 = _median_p90(python_ms)
    return {"challenges": args.challenges, "max_number": args.max_number,
            "browser_ms_median": round(b50, 1), "browser_ms_p90": round(b90, 1),
            "python_ms_median": round(p50, 1), "python_ms_p90": round(p90, 1),
            "browser_to_python_ratio": round(b50 / p50, 2) if p50 else None,
            "server_get_us": round(get_us, 1), "server_post_us": round(post_us, 1),
            "hmac_us": round(hmac_us, 2),
            "server_post_to_hmac_ratio": round(post_us / hmac_us, 1)}


def render(r: dict) -> str:
    return table([
        ("challenges x max number", f"{r['challenges']} x {r['max_number']:,}"),
        ("browser solve (Chromium), median / p90", f"{r['browser_ms_median']} / {r['browser_ms_p90']} ms"),
        ("floor: Python solve (a bot), median / p90", f"{r['python_ms_median']} / {r['python_ms_p90']} ms"),
        ("browser / floor", f"{r['browser_to_python_ratio']}x"),
        ("-", ""),
        ("server: challenge + token (GET)", f"{r['server_get_us']} us"),
        ("server: verify both (POST, no Redis)", f"{r['server_post_us']} us"),
        ("one HMAC-SHA256 (reference)", f"{r['hmac_us']} us"),
        ("POST checks / HMAC", f"{r['server_post_to_hmac_ratio']}x"),
    ], "bench.embed_pow: the embedded forms' proof of work")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--challenges", type=int, default=20)
    p.add_argument("--max-number", type=int, default=100_000)
    p.add_argument("--json", dest="json_path", default=None)
    return run_bench("embed_pow", p.parse_args(), run, render)


if __name__ == "__main__":
    raise SystemExit(main())
