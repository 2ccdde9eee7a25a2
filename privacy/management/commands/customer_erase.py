from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import acting, command_line_actor
from privacy.management.commands.customer_export import client_named
from privacy.services import CustomerInProgress, customer_erase


class Command(BaseCommand):
    help = (
        "Redact one customer's personal data now, in every place it is copied, except the "
        "records the law keeps, which it lists with why and until when. Refused while an "
        "order of theirs is in progress. The erasure is recorded."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("client", help="The API client's name.")
        parser.add_argument("customer_id", help="The customer id the client sends on orders.")

    def handle(self, *args: Any, client: str, customer_id: str, **options: Any) -> None:
        api_client = client_named(client)
        try:
            with acting(
                command_line_actor(),
                "customer_erase",
                f"customer_erase: customer {customer_id} of {api_client.name}",
            ):
                request = customer_erase(
                    client=api_client,
                    customer_id=customer_id,
                    by=f"command:{getpass.getuser()}",
                )
        except CustomerInProgress as exc:
            raise CommandError(f"not erased: {exc}") from exc
        self.stdout.write(
            f"erased {customer_id} of {client}: {request.orders} orders, "
            f"{request.prescriptions} prescriptions (request {request.pk})"
        )
        for store, count in sorted(request.redacted.items()):
            self.stdout.write(f"  {store}: {count} rows redacted")
        if request.kept:
            self.stdout.write("kept, as the law requires:")
        for entry in request.kept:
            self.stdout.write(f"  {entry['record']}: {entry['why']}, until {entry['until']}")
