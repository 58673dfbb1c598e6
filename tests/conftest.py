"""The suite's fixtures live in plugins, one file per kind of real part."""

pytest_plugins = [
    "tests.plugins.parts",
    "tests.plugins.processes",
    "tests.plugins.staff",
    "tests.plugins.browsers",
]
