"""WSGI entry point: `gunicorn wsgi:app`."""

from alerts import create_app

app = create_app()
