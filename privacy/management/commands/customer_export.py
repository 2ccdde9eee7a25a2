from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import acting, command_line_actor
from core.models import ApiClient
from privacy.selectors import api_client_named
from privacy.services import customer_export


def client_named(name: str) -> ApiClient:
    """The API client a command names (its `create_api_client` NAME)."""
    client = api_client_named(name)
    if client is None:
        raise CommandError(f"no client named {name!r}")
    return client


class Command(BaseCommand):
    help = (
        "Write everything COT holds about one customer of one API client as JSON (schema: "
        "docs/API.md, 'Customer data export'), to stdout or --output. The export is recorded."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("client", help="The API client's name.")
        parser.add_argument("customer_id", help="The customer id the client sends on orders.")
        parser.add_argument("--output", type=Path, help="Write to this file instead of stdout.")

    def handle(
        self, *args: Any, client: str, customer_id: str, output: Path | None, **options: Any
    ) -> None:
        api_client = client_named(client)
        with acting(
            command_line_actor(),
            "customer_export",
            f"customer_export: customer {customer_id} of {api_client.name}",
        ):
            document = customer_export(
                client=api_client,
                customer_id=customer_id,
                by=f"command:{getpass.getuser()}",
            )
        text = json.dumps(document, indent=2, ensure_ascii=False)
        if output is None:
            self.stdout.write(text)
        else:
            output.write_text(text + "\n", encoding="utf-8")
            self.stderr.write(f"written to {output}")
