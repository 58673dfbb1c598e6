"""gunicorn's settings file (read from the working directory): tokens never reach the access
log, and its own logs are JSON too.

With LOG_FORMAT=json, gunicorn's error and access logs go through alerts.logs.JsonFormatter,
like the app's, one JSON object per line on stderr. Otherwise gunicorn logs as it always does.
"""

import os

from gunicorn.glogging import Logger

from alerts.logs import redact_tokens


class RedactingLogger(Logger):
    """Access log lines with every token URL redacted (the request line, the path, Referer)."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact_tokens(value) if isinstance(value, str) else value
                for key, value in atoms.items()}


logger_class = RedactingLogger

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
