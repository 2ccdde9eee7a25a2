from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import ApiClient
from core.services import api_key_rotate


def grace_hours(value: str) -> float:
    """`--grace-hours`: a number of hours, zero or more."""
    hours = float(value)
    if not 0 <= hours <= 24 * 365:
        raise ValueError(value)
    return hours


class RotateCommand(BaseCommand):
    """`<command> NAME [--grace-hours N]`: `rotate` gives the named client a new credential
    and the command prints it."""

    rotate: Callable[..., str]  # a staticmethod: (client=, grace=) -> the new value

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--grace-hours", type=grace_hours, default=24.0)

    def handle(self, *args: Any, name: str, grace_hours: float, **options: Any) -> None:
        client = ApiClient.objects.filter(name=name).first()
        if client is None:
            raise CommandError(f"no client named {name!r}")
        self.stdout.write(self.rotate(client=client, grace=timedelta(hours=grace_hours)))


class Command(RotateCommand):
    help = (
        "Issue a client a new API key and print it (shown once). The client's older keys "
        "keep working for --grace-hours (default 24; 0 ends them at once), then answer 401."
    )
    rotate = staticmethod(api_key_rotate)
