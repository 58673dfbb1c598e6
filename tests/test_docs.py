"""The documents keep up with the code: every setting the service reads is in docs/configuration.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"
# The helpers in alerts/config.py whose first argument is a setting's name.
READERS = {"_env", "_int", "_float", "_bool", "_timezone", "_choice", "_list", "_seconds", "_delays"}
ENVIRON_READS = {"get", "pop", "setdefault"}
# Where the service reads its environment: the package, and the entry points beside it.
SOURCES = [*sorted((ROOT / "alerts").rglob("*.py")),
           ROOT / "gunicorn.conf.py", ROOT / "worker.py", ROOT / "wsgi.py"]


def _is_environ(node: ast.AST) -> bool:
    """True for `os.environ` (or a bare `environ` imported from os)."""
    if isinstance(node, ast.Attribute) and node.attr == "environ":
        return isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id == "environ"


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _reads_by_call(func: ast.AST) -> bool:
    """A call whose first argument names a setting: a config helper, os.environ.get, getenv."""
    if isinstance(func, ast.Name):
        return func.id in READERS or func.id == "getenv"
    if isinstance(func, ast.Attribute):
        return func.attr == "getenv" or (func.attr in ENVIRON_READS and _is_environ(func.value))
    return False


def _name_read(node: ast.AST) -> str | None:
    """The setting a node reads, when it reads one by a literal name."""
    if isinstance(node, ast.Call) and node.args and _reads_by_call(node.func):
        return _literal(node.args[0])
    if isinstance(node, ast.keyword) and node.arg == "envvar":  # a click option's variable
        return _literal(node.value)
    if isinstance(node, ast.Subscript) and _is_environ(node.value) and isinstance(node.ctx, ast.Load):
        return _literal(node.slice)
    if (isinstance(node, ast.Compare) and len(node.comparators) == 1 and _is_environ(node.comparators[0])
            and isinstance(node.ops[0], (ast.In, ast.NotIn))):
        return _literal(node.left)
    return None


def settings_read(source: str) -> set[str]:
    """Every literal setting name a module reads: config helpers, os.environ, getenv, click's envvar."""
    return {name for node in ast.walk(ast.parse(source)) if (name := _name_read(node)) is not None}


def documented(markdown: str) -> set[str]:
    """Setting names in the first cell of the tables' rows of docs/configuration.md."""
    names: set[str] = set()
    for line in markdown.splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def test_the_reader_finds_every_kind_of_lookup():
    """The parser sees each way a module reads a setting, so a new one cannot slip past it."""
    source = (
        "import os\n"
        "from os import environ, getenv\n"
        "a = _env('A_ENV')\n"
        "b = _int('B_INT', 3)\n"
        "c = _float('C_FLOAT', None)\n"
        "d = _timezone('D_TZ', 'UTC')\n"
        "e = _choice('E_CHOICE', ('x',), 'x')\n"
        "f = os.environ.get('F_GET')\n"
        "g = os.environ['G_ITEM']\n"
        "h = os.getenv('H_GETENV')\n"
        "i = environ.get('I_BARE')\n"
        "j = getenv('J_BARE')\n"
        "k = 'K_IN' in os.environ\n"
        "os.environ['NOT_READ'] = '1'\n"
        "l = _env(name)\n"
        "@click.option('--port', envvar='M_CLICK')\n"
        "def m(port): pass\n"
    )
    assert settings_read(source) == {
        "A_ENV", "B_INT", "C_FLOAT", "D_TZ", "E_CHOICE", "F_GET", "G_ITEM", "H_GETENV", "I_BARE",
        "J_BARE", "K_IN", "M_CLICK",
    }


def test_config_reads_the_settings_the_contract_names():
    """A sanity check on the parser against the real module: the contract's names are found."""
    names = settings_read((ROOT / "alerts" / "config.py").read_text())
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "SMTP_URL", "BASE_URL", "TRACK_CLICKS"} <= names


def test_every_setting_read_is_documented():
    """A setting the code reads but docs/configuration.md does not list is one nobody can find."""
    table = documented(CONFIGURATION.read_text())
    missing: dict[str, list[str]] = {}
    for path in SOURCES:
        if not path.exists():
            continue
        for name in sorted(settings_read(path.read_text())):
            if name not in table:
                missing.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert not missing, "settings read but not in docs/configuration.md: " + "; ".join(
        f"{name} (read in {', '.join(paths)})" for name, paths in sorted(missing.items())
    )


# Phrases that narrate how, when or in which sitting the project was made, not what it does.
NARRATION = re.compile(
    r"\b(first|second|third|fourth|fifth|sixth|seventh|last|next|previous|earlier|that|this)"
    r" session(?:'s)? (machine|runs|changes|commit|measured)\b"
    r"|\bsession's (shared|machine)\b",
    re.IGNORECASE,
)
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "bench").glob("*.md"))]


def narration(text: str) -> list[str]:
    """The lines of a document that tell the story of its making."""
    return [line.strip() for line in text.splitlines() if NARRATION.search(line)]


def test_narration_is_recognised():
    """The check sees the phrases it exists for, and leaves product text alone."""
    assert narration("On the fifth session's machine it measured 1.6x.")
    assert narration("measured on that session's shared host")
    assert narration("The sixth session measured 1.4x.")
    assert not narration("A staff session lasts 8 hours; the session cookie is Secure.")


def test_documents_speak_of_the_product_only():
    """The manual, the docs and the bench notes describe the product, not how it was developed."""
    found = {str(path.relative_to(ROOT)): lines
             for path in DOCUMENTS if (lines := narration(path.read_text()))}
    assert not found, f"development history in the documents: {found}"


def _service_block(compose: str, service: str) -> str:
    """The lines of one service in docker-compose.yml (two-space indented names under services)."""
    block = compose.split(f"\n  {service}:\n", 1)[1]
    return re.split(r"\n  \w[\w-]*:\n|\n\S", block, maxsplit=1)[0]


def test_the_bounce_receiver_runs_only_with_its_profile_and_the_docs_say_how():
    """Port 25 is published only when asked for; the operations guide names the profile."""
    compose = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r'^    profiles: \["bounces"\]$', _service_block(compose, "bounces"), re.MULTILINE)
    assert "--profile bounces" in (ROOT / "docs" / "operations.md").read_text()
    referenced = set(re.findall(r"docs/[\w-]+\.md", compose))
    assert referenced and all((ROOT / doc).exists() for doc in referenced), referenced
