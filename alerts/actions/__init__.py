"""Actions people take: the catalog (seed, order, edits), signing, references, staff records.

`catalog` is re-exported here, so `from alerts.actions import open_actions` keeps working.
"""

from .catalog import (  # noqa: F401
    SEED_ACTIONS,
    SEED_PLEDGES,
    SEED_TARGETS,
    ActionError,
    ActionText,
    action_link,
    by_slug,
    move,
    next_open_action,
    open_actions,
    ordered_actions,
    save,
    seed_actions,
    set_open,
    slugify,
    text_of,
)
