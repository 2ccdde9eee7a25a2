from __future__ import annotations

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


class Command(BaseCommand):
    help = (
        "Issue a client a new API key and print it (shown once). The client's older keys "
        "keep working for --grace-hours (default 24; 0 ends them at once), then answer 401."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--grace-hours", type=grace_hours, default=24.0)

    def handle(self, *args: Any, name: str, grace_hours: float, **options: Any) -> None:
        client = ApiClient.objects.filter(name=name).first()
        if client is None:
            raise CommandError(f"no client named {name!r}")
        self.stdout.write(api_key_rotate(client=client, grace=timedelta(hours=grace_hours)))
