"""The suite's fixtures live in plugins, one file per kind of real part."""

from tests import budgets  # noqa: F401  (the Hypothesis profile, before any test module loads)

pytest_plugins = [
    "tests.plugins.parts",
    "tests.plugins.processes",
    "tests.plugins.staff",
    "tests.plugins.browsers",
]
