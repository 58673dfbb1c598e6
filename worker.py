"""Celery entry point: `celery -A worker worker` and `celery -A worker beat`."""

# premailer is loaded here, in the parent, so every pool process forks with it: the web app
# and the CLI import it only when they compile an email, but a worker's first batch would
# otherwise spend half a second importing it before its first message (measured at a million).
import premailer  # noqa: F401

from alerts import create_app
from alerts.blasts.content import warm_up

flask_app = create_app()
celery = flask_app.extensions["celery"]
# The alert templates compiled and their stylesheet parsed once, here, before the pool forks:
# each pool process's first batch then compiles its alert in ~6 ms instead of ~35.
warm_up(flask_app)

import alerts.tasks  # noqa: E402,F401  (registers the tasks with this app)
