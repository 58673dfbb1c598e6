"""gunicorn's settings file (read from the working directory): its own logs as JSON too.

With LOG_FORMAT=json, gunicorn's error and access logs go through alerts.logs.JsonFormatter,
like the app's, one JSON object per line on stderr. Otherwise gunicorn logs as it always does.
"""

import os

if (os.environ.get("LOG_FORMAT") or "").lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "alerts.logs.JsonFormatter"}},
        "handlers": {
            "json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
        },
        # The root logger is the app's: create_app gives it the same formatter.
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["json"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["json"], "propagate": False},
        },
    }
