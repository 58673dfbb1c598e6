"""Celery entry point: `celery -A worker worker` and `celery -A worker beat`."""

# premailer is loaded here, in the parent, so every pool process forks with it: the web app
# and the CLI import it only when they compile an email, but a worker's first batch would
# otherwise spend half a second importing it before its first message (measured at a million).
import premailer  # noqa: F401

from alerts import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]

import alerts.tasks  # noqa: E402,F401  (registers the tasks with this app)
