"""The one table of task names (alerts.tasknames) and the tasks the workers register agree."""

from __future__ import annotations

from alerts import tasknames, tasks  # noqa: F401 - importing the task module registers its tasks


def _registered(app) -> set[str]:
    celery = app.extensions["celery"]
    return {name for name in celery.tasks if name.startswith("alerts.")}


def test_every_name_in_the_table_is_a_registered_task(app):
    assert tasknames.ALL  # (the table is read, not empty)
    missing = tasknames.ALL - _registered(app)
    assert not missing, f"in alerts.tasknames but no task is registered under: {sorted(missing)}"


def test_every_registered_task_is_in_the_table(app):
    unnamed = _registered(app) - tasknames.ALL
    assert not unnamed, f"registered but not in alerts.tasknames: {sorted(unnamed)}"


def test_the_beat_schedule_and_routes_name_tasks_of_the_table(app):
    conf = app.extensions["celery"].conf
    scheduled = {entry["task"] for entry in conf.beat_schedule.values()}
    assert scheduled and scheduled <= tasknames.ALL
    assert set(conf.task_routes) <= tasknames.ALL
