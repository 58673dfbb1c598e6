"""Hypothesis budgets: the full ones under the `ci` profile (scripts/test), small ones for the
quick loop (`dev`, the default). HYPOTHESIS_PROFILE picks the profile."""

from __future__ import annotations

import os

from hypothesis import settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
DEV_EXAMPLES = 25

settings.register_profile("ci", max_examples=100)
settings.register_profile("dev", max_examples=DEV_EXAMPLES)
settings.load_profile(PROFILE)


def examples(ci: int) -> int:
    """A property's own budget: all of it under `ci`, a twentieth of it (at least the
    profile's) in the quick loop."""
    if PROFILE == "ci":
        return ci
    return min(ci, max(settings.default.max_examples, ci // 20))
