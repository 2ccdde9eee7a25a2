from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.management.commands.rotate_api_key import grace_hours
from core.models import ApiClient
from core.services import webhook_secret_rotate


class Command(BaseCommand):
    help = (
        "Give a client a new webhook signing secret and print it (shown once). For "
        "--grace-hours (default 24; 0: none) every delivery is signed with both: "
        "X-COT-Signature: sha256=<new>,sha256=<old>."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--grace-hours", type=grace_hours, default=24.0)

    def handle(self, *args: Any, name: str, grace_hours: float, **options: Any) -> None:
        client = ApiClient.objects.filter(name=name).first()
        if client is None:
            raise CommandError(f"no client named {name!r}")
        self.stdout.write(webhook_secret_rotate(client=client, grace=timedelta(hours=grace_hours)))
