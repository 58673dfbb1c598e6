"""Actions people take: the catalog (seed, order, edits), signing, references, staff records.

`catalog` is re-exported here, so `from alerts.actions import open_actions` keeps working.
"""

from .catalog import (  # noqa: F401
    KIND_NAMES,
    SEED_ACTIONS,
    SEED_PLEDGES,
    SEED_TARGETS,
    TRANSLATED_FIELDS,
    ActionError,
    ActionText,
    action_link,
    by_slug,
    has_version,
    missing_languages,
    move,
    next_open_action,
    open_actions,
    ordered_actions,
    save,
    save_translation,
    seed_actions,
    set_open,
    slugify,
    text_of,
)
