from __future__ import annotations

from pathlib import Path
from typing import Any

from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from core.enums import Channel
from core.models import ApiClient, ClientAPIKey

DEMO_CATALOG = Path(__file__).resolve().parents[3] / "inventory" / "fixtures" / "demo_catalog.json"
DEMO_CLIENT = "demo-web"


class Command(BaseCommand):
    help = (
        "Load the bundled demo catalog and the demo client; with --print-credentials, issue "
        "the demo client a fresh API key and (re)set the admin user, and print both."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--print-credentials", action="store_true")

    def handle(self, *args: Any, print_credentials: bool, **options: Any) -> None:
        call_command("load_catalog", str(DEMO_CATALOG), stdout=self.stdout)
        with transaction.atomic():
            client, _ = ApiClient.objects.get_or_create(
                name=DEMO_CLIENT, defaults={"channel": Channel.WEB}
            )
            key = None
            if print_credentials or not client.api_keys.exists():
                # Keys are stored hashed, so showing one means issuing a new one.
                client.api_keys.update(revoked=True)
                _, key = ClientAPIKey.objects.create_key(name="demo key", client=client)
        self.stdout.write(f"demo client {DEMO_CLIENT!r} ready")
        if not print_credentials:
            return
        # DEV-ONLY default password for the local demo admin; set COT_ADMIN_PASSWORD (with
        # DEBUG off it must be set: `make run` does).
        password = settings.COT_ADMIN_PASSWORD
        if not password:
            if settings.COT_REFUSE_DEV_SECRETS:
                raise CommandError("set COT_ADMIN_PASSWORD: the demo admin has no default here")
            password = settings.DEV_ONLY_DEFAULTS["COT_ADMIN_PASSWORD"]
        admin, _ = User.objects.get_or_create(username="admin")
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()
        # A fresh `make run` is a fresh start: earlier failed logins no longer lock it.
        axes_reset(username="admin")
        self.stdout.write(f"COT_DEMO_API_KEY={key}")
        self.stdout.write(f"COT_ADMIN_USER=admin COT_ADMIN_PASSWORD={password}")
