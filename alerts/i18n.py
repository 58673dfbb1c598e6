"""The language a person reads: chosen per request for pages, per subscriber for email.

A page's language is `?lang=` (kept in a cookie from then on), else the cookie, else the
subscriber's own language when the page is theirs (a link from their email: the view sets
`g.subscriber_language` before the page's first text), else the browser's Accept-Language, else
the default (the first of LANGUAGES). Staff pages and the API stay in the default language.
Email is rendered inside `in_language(code)`, whatever the request. Catalogues are
`translations/<code>/LC_MESSAGES/messages.po`; they are compiled to `.mo` under the instance
folder when the app starts and a `.po` is newer than its `.mo`, so a catalogue edited is a
catalogue used.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, force_locale, get_locale

from .config import PROJECT_ROOT

CATALOGUES = PROJECT_ROOT / "translations"
COOKIE = "lang"
COOKIE_SECONDS = 365 * 24 * 3600
# Blueprints whose pages are not translated (yet): staff pages, the API and its reference speak the default.
UNTRANSLATED = ("staff", "api", "api_pages")
NAMES = {"en": "English", "es": "Español"}  # each language in its own words, for the switch
STAFF_NAMES = {"en": "English", "es": "Spanish"}  # each language as the (English) staff pages name it

babel = Babel()


def languages() -> list[str]:
    return list(current_app.config["LANGUAGES"])


def default_language() -> str:
    return languages()[0]


def known(code: str | None) -> str | None:
    """`code` if it is one of LANGUAGES (case and region ignored: es-MX reads as es), else None."""
    if not code:
        return None
    code = str(code).strip().lower().replace("_", "-").split("-", 1)[0]
    return code if code in languages() else None


def language_of(subscriber_language: str | None) -> str:
    """The language to write to a subscriber in: theirs, else the default."""
    return known(subscriber_language) or default_language()


def _select() -> str:
    forced = g.get("forced_language") if has_request_context() else None
    if forced:
        return forced
    if not has_request_context():
        return default_language()
    if (request.blueprint or "").split(".", 1)[0] in UNTRANSLATED:
        return default_language()
    return (known(request.args.get("lang")) or known(request.cookies.get(COOKIE))
            or known(g.get("subscriber_language"))
            or request.accept_languages.best_match(languages()) or default_language())


def current() -> str:
    """The language of what is being rendered now."""
    return str(get_locale() or default_language())


@contextlib.contextmanager
def in_language(code: str | None) -> Iterator[str]:
    """Render inside this block in `code` (else the default): email, whatever the page's language."""
    lang = known(code) or default_language()
    with force_locale(lang):
        yield lang


def _compile(out_root: Path) -> Path:
    """Each catalogue compiled to `.mo` where it is older than its `.po` (atomically: several
    processes may start at once)."""
    for po in CATALOGUES.glob("*/LC_MESSAGES/*.po"):
        mo = out_root / po.relative_to(CATALOGUES).with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.parts[-3])
        fd, tmp = tempfile.mkstemp(dir=mo.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            write_mo(out, catalog, use_fuzzy=False)
        os.replace(tmp, mo)
    return out_root


def _choose_afresh() -> None:
    """Each request picks its own language: Flask-Babel keeps the one it picked on `g`, which
    lives as long as the app context, and a request inside an app context already pushed
    (a test's, a script's) would otherwise inherit the language of the request before it."""
    g.pop("_flask_babel", None)


def _remember_choice(response):
    """`?lang=` on a page is kept in a cookie, so the next page speaks it too; every page that
    may differ by language says so to caches."""
    chosen = known(request.args.get("lang")) if has_request_context() else None
    if chosen and request.cookies.get(COOKIE) != chosen:
        response.set_cookie(COOKIE, chosen, max_age=COOKIE_SECONDS, samesite="Lax",
                            secure=current_app.config.get("SESSION_COOKIE_SECURE") or False, httponly=True)
    if (request.blueprint or "").split(".", 1)[0] not in UNTRANSLATED:
        response.vary.add("Accept-Language")
        response.vary.add("Cookie")
    return response


def init_app(app: Flask) -> None:
    compiled = _compile(Path(app.instance_path) / "translations")
    app.config.setdefault("BABEL_DEFAULT_LOCALE", app.config["LANGUAGES"][0])
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(compiled)
    babel.init_app(app, locale_selector=_select)
    app.before_request(_choose_afresh)
    app.after_request(_remember_choice)
    app.jinja_env.globals.update(
        current_language=current, default_language=default_language, language_names=NAMES,
        all_languages=lambda: languages())


def version_in(translations: Mapping[str, Any] | None, lang: str | None, required: str) -> dict | None:
    """A text's version in `lang` (from a `translations` column), or None when it has none:
    a version lacking its `required` field (a title, a subject) is no version, so a reader
    gets the whole default text rather than a mixture of the two."""
    code = known(lang)
    if not code or code == default_language() or not translations:
        return None
    version = translations.get(code)
    if not isinstance(version, Mapping) or not str(version.get(required) or "").strip():
        return None
    return dict(version)


def other_languages() -> list[str]:
    """The languages a text may have a version in besides the default (its columns)."""
    return languages()[1:]


def cleaned_translations(current: Mapping[str, Any] | None, lang: str,
                         version: Mapping[str, str | None]) -> dict | None:
    """`current` with `lang`'s version replaced by `version` (stripped); a version left all
    blank is dropped, and no versions at all is None."""
    out = {k: dict(v) for k, v in (current or {}).items() if isinstance(v, Mapping)}
    kept = {k: (v or "").strip() for k, v in version.items() if (v or "").strip()}
    if kept:
        out[lang] = kept
    else:
        out.pop(lang, None)
    return out or None
