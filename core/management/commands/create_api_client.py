from __future__ import annotations

from argparse import ArgumentTypeError
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import URLValidator
from django.db import transaction

from core.enums import Channel
from core.models import (
    DEFAULT_ORDERS_PER_SECOND,
    DEFAULT_REQUESTS_PER_SECOND,
    ApiClient,
    ClientAPIKey,
)


def _per_second(value: str) -> int:
    if not value.isdigit():
        raise ArgumentTypeError(f"{value!r} is not a whole number of 0 or more")
    return int(value)


class Command(BaseCommand):
    help = (
        "Create a channel client and print its API key (first line, shown once) and, with "
        "--webhook-url, its webhook signing secret (second line)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--channel", required=True, choices=Channel.values)
        parser.add_argument("--webhook-url", default="")
        parser.add_argument(
            "--orders-per-second",
            type=_per_second,
            default=DEFAULT_ORDERS_PER_SECOND,
            help=f"order placements per second (default {DEFAULT_ORDERS_PER_SECOND}; 0: no limit)",
        )
        parser.add_argument(
            "--requests-per-second",
            type=_per_second,
            default=DEFAULT_REQUESTS_PER_SECOND,
            help=f"API requests per second (default {DEFAULT_REQUESTS_PER_SECOND}; 0: no limit)",
        )

    def handle(
        self,
        *args: Any,
        name: str,
        channel: str,
        webhook_url: str,
        orders_per_second: int,
        requests_per_second: int,
        **options: Any,
    ) -> None:
        if webhook_url:
            try:
                URLValidator(schemes=["http", "https"])(webhook_url)
            except ValidationError:
                raise CommandError(f"--webhook-url is not an http(s) URL: {webhook_url}") from None
        if ApiClient.objects.filter(name=name).exists():
            raise CommandError(f"a client named {name!r} exists already")
        with transaction.atomic():
            client = ApiClient.objects.create(
                name=name,
                channel=channel,
                webhook_url=webhook_url,
                orders_per_second=orders_per_second,
                requests_per_second=requests_per_second,
            )
            _, key = ClientAPIKey.objects.create_key(name=f"{name} key", client=client)
        self.stdout.write(key)
        if webhook_url:
            self.stdout.write(client.webhook_secret)
