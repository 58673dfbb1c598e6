"""The catalogues: every string marked for translation has a Spanish translation, none fuzzy,
and the catalogues hold what the code and templates mark today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOGUES = ROOT / "translations"
LANGS = sorted(p.name for p in CATALOGUES.iterdir() if (p / "LC_MESSAGES" / "messages.po").is_file())


def _read(path: Path):
    with path.open("rb") as f:
        return read_po(f)


def _ids(catalog) -> set:
    return {m.id for m in catalog if m.id}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> set:
    """What the code and templates mark now, extracted as `scripts/translations extract` does."""
    pot = tmp_path_factory.mktemp("pot") / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "-q", "extract", "-F", "babel.cfg",
                    "-k", "_l", "-k", "lazy_gettext", "--no-location", "-o", str(pot), "."],
                   cwd=ROOT, check=True)
    return _ids(_read(pot))


def test_spanish_is_among_the_catalogues():
    assert "es" in LANGS


@pytest.mark.parametrize("lang", LANGS)
def test_each_catalogue_holds_what_the_code_marks_now(lang, extracted):
    have = _ids(_read(CATALOGUES / lang / "LC_MESSAGES" / "messages.po"))
    missing, stale = extracted - have, have - extracted
    assert not missing, f"{lang}: run scripts/translations extract; not in it: {sorted(missing)[:10]}"
    assert not stale, f"{lang}: run scripts/translations extract; no longer marked: {sorted(stale)[:10]}"


@pytest.mark.parametrize("lang", LANGS)
def test_every_entry_is_translated_and_none_is_fuzzy(lang):
    catalog = _read(CATALOGUES / lang / "LC_MESSAGES" / "messages.po")
    empty = [m.id for m in catalog
             if m.id and not (all(m.string) if isinstance(m.string, tuple) else m.string)]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert not empty, f"{lang}: {len(empty)} untranslated, e.g. {empty[:5]}"
    assert not fuzzy, f"{lang}: {len(fuzzy)} fuzzy, e.g. {fuzzy[:5]}"
