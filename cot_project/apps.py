from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
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


def _dev_only_secrets_message() -> str | None:
    if not settings.COT_REFUSE_DEV_SECRETS:
        return None
    in_use = dev_only_secrets_in_use()
    if not in_use:
        return None
    return (
        "DEV-ONLY default secrets with DJANGO_DEBUG off: set "
        + ", ".join(in_use)
        + " to real values (or DJANGO_DEBUG=true on a developer's machine)."
    )


def dev_only_secrets_refuse() -> None:
    """With DEBUG off, no server process (API, worker, beat) starts on a secret that anyone
    can read in this repository. Management commands (migrate, ...) still run: they serve
    nobody, and `check --deploy` reports the same as an error."""
    message = _dev_only_secrets_message()
    if message:
        raise ImproperlyConfigured(message)


@checks.register(checks.Tags.security, deploy=True)
def dev_only_secrets_check(**kwargs: object) -> list[checks.CheckMessage]:
    message = _dev_only_secrets_message()
    return [checks.Error(message, id="cot.E001")] if message else []


class CotProjectConfig(AppConfig):
    name = "cot_project"
    verbose_name = "COT"

    def ready(self) -> None:
        # Every process that runs Django (the API, management commands, tests) has the
        # Celery app configured before it sends a task: `shared_task`s bind to it.
        # Workers, beat and Flower load it themselves (`celery -A cot_project`).
        from cot_project import celery  # noqa: F401
