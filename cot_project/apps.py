from __future__ import annotations

from django.apps import AppConfig


class CotProjectConfig(AppConfig):
    name = "cot_project"
    verbose_name = "COT"

    def ready(self) -> None:
        # Every process that runs Django (the API, management commands, tests) has the
        # Celery app configured before it sends a task: `shared_task`s bind to it.
        # Workers, beat and Flower load it themselves (`celery -A cot_project`).
        from cot_project import celery  # noqa: F401
