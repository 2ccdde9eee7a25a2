from __future__ import annotations

from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from core.enums import Channel
from core.models import (
    DEFAULT_ORDERS_PER_SECOND,
    DEFAULT_REQUESTS_PER_SECOND,
    MAX_PAYMENT_RETRY_SECONDS,
    ApiClient,
    ClientAPIKey,
)
from core.webhook_urls import WebhookUrlInvalid, WebhookUrlRefused, webhook_url_check


def _per_second(value: str) -> int:
    if not value.isdigit():
        raise ArgumentTypeError(f"{value!r} is not a whole number of 0 or more")
    return int(value)


class Command(BaseCommand):
    help = (
        "Create a channel client and print its API key (first line, shown once) and, with "
        "--webhook-url, its webhook signing secret (second line). The URL must be https to "
        "a public address (COT_ALLOW_PRIVATE_WEBHOOKS also allows http and private ones)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--channel", required=True, choices=Channel.values)
        parser.add_argument("--webhook-url", default="")
        parser.add_argument(
            "--payment-retry-seconds",
            type=int,
            default=0,
            help="How long a declined order waits for another payment method (default 0: "
            f"off; at most {MAX_PAYMENT_RETRY_SECONDS}).",
        )
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
        payment_retry_seconds: int,
        orders_per_second: int,
        requests_per_second: int,
        **options: Any,
    ) -> None:
        if webhook_url:
            if len(webhook_url) > ApiClient._meta.get_field("webhook_url").max_length:
                raise CommandError("--webhook-url is longer than 200 characters")
            try:
                webhook_url_check(webhook_url)
            except (WebhookUrlInvalid, WebhookUrlRefused) as exc:
                raise CommandError(f"--webhook-url refused: {exc}") from None
        if not 0 <= payment_retry_seconds <= MAX_PAYMENT_RETRY_SECONDS:
            raise CommandError(
                f"--payment-retry-seconds must be 0 to {MAX_PAYMENT_RETRY_SECONDS}, "
                f"not {payment_retry_seconds}"
            )
        if ApiClient.objects.filter(name=name).exists():
            raise CommandError(f"a client named {name!r} exists already")
        with transaction.atomic():
            client = ApiClient.objects.create(
                name=name,
                channel=channel,
                webhook_url=webhook_url,
                payment_retry_seconds=payment_retry_seconds,
                orders_per_second=orders_per_second,
                requests_per_second=requests_per_second,
            )
            _, key = ClientAPIKey.objects.create_key(name=f"{name} key"[:50], client=client)
        self.stdout.write(key)
        if webhook_url:
            self.stdout.write(client.webhook_secret)
