"""Celery entry point: `celery -A worker worker` and `celery -A worker beat`."""

from alerts import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]

import alerts.tasks  # noqa: E402,F401  (registers the tasks with this app)
