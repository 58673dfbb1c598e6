# One image for every service in docker-compose.yml: web, worker, beat, bounces, migrate.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # The app finds its templates, static files and instance/ beside the alerts package,
    # so the source tree in /app is what gets imported (the installed copy only brings the
    # dependencies and the `alerts` command).
    PYTHONPATH=/app

WORKDIR /app

# DejaVu Sans Bold draws an action's default share card (alerts/actions/images.py).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml ./
COPY alerts ./alerts
RUN pip install .

COPY . .
RUN useradd --system --uid 10001 --create-home --home-dir /home/alerts --shell /usr/sbin/nologin alerts \
    && mkdir -p /app/instance \
    && chown alerts:alerts /app/instance

USER alerts
EXPOSE 8000 2525
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120", "wsgi:app"]
