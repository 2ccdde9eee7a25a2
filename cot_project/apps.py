from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Environment variable -> the setting that holds its value.
SECRET_SETTINGS = {
    "DJANGO_SECRET_KEY": "SECRET_KEY",
    "PAYMENTS_WEBHOOK_SECRET": "PAYMENTS_WEBHOOK_SECRET",
    "LOGISTICS_WEBHOOK_SECRET": "LOGISTICS_WEBHOOK_SECRET",
    "FLOWER_BASIC_AUTH": "FLOWER_BASIC_AUTH",
    "COT_ADMIN_PASSWORD": "COT_ADMIN_PASSWORD",
}


def dev_only_secrets_in_use() -> list[str]:
    """The environment variables whose DEV-ONLY default value is in use."""
    return [
        variable
        for variable, setting in SECRET_SETTINGS.items()
        if getattr(settings, setting, "") == settings.DEV_ONLY_DEFAULTS[variable]
    ]


def dev_only_secrets_refuse() -> None:
    """With DEBUG off, no process starts on a secret that anyone can read in this repository."""
    if not settings.COT_REFUSE_DEV_SECRETS:
        return
    in_use = dev_only_secrets_in_use()
    if in_use:
        raise ImproperlyConfigured(
            "DEV-ONLY default secrets with DJANGO_DEBUG off: set "
            + ", ".join(in_use)
            + " to real values (or DJANGO_DEBUG=true on a developer's machine)."
        )


class CotProjectConfig(AppConfig):
    name = "cot_project"
    verbose_name = "COT"

    def ready(self) -> None:
        dev_only_secrets_refuse()
        # Every process that runs Django (the API, management commands, tests) has the
        # Celery app configured before it sends a task: `shared_task`s bind to it.
        # Workers, beat and Flower load it themselves (`celery -A cot_project`).
        from cot_project import celery  # noqa: F401
