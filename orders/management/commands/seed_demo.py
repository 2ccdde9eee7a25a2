from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import numpy as np
from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from core.enums import Channel
from core.models import ApiClient, ClientAPIKey
from inventory.models import FulfillmentCenter, Product
from orders.services.demo_history import (
    bench_catalog_create,
    demo_processes,
    history_last_day,
    order_history_write,
)

DEMO_CATALOG = Path(__file__).resolve().parents[3] / "inventory" / "fixtures" / "demo_catalog.json"
DEMO_CLIENT = "demo-web"


class Command(BaseCommand):
    help = (
        "Load the bundled demo catalog and the demo client; with --print-credentials, issue "
        "the demo client a fresh API key and (re)set the admin user, and print both."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--print-credentials", action="store_true")
        parser.add_argument(
            "--history-days",
            type=int,
            default=0,
            help="Also write N days of past orders up to yesterday (only the days not "
            "written yet), so that forecasting has history.",
        )
        parser.add_argument(
            "--history-skus",
            type=int,
            default=0,
            help="History for this many generated products (BENCH-00001, ...) at "
            "--history-centers generated centres instead of the demo catalog (benchmark).",
        )
        parser.add_argument("--history-centers", type=int, default=5)
        parser.add_argument("--history-seed", type=int, default=7)

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
        if options["history_days"] > 0:
            self._history(client, options)
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

    def _history(self, client: ApiClient, options: dict[str, Any]) -> None:
        today = timezone.localdate()
        origin = today - datetime.timedelta(days=options["history_days"])
        last = history_last_day()
        first = max(origin, last + datetime.timedelta(days=1)) if last else origin
        days = [first + datetime.timedelta(days=n) for n in range((today - first).days)]
        if not days:
            self.stdout.write("order history already up to date")
            return
        bench = options["history_skus"] > 0
        if bench:
            bench_catalog_create(
                skus=options["history_skus"], centers=options["history_centers"], today=today
            )
            products = list(Product.objects.filter(sku__startswith="BENCH-"))
            centers = list(FulfillmentCenter.objects.filter(code__startswith="BN-"))
        else:
            products = list(Product.objects.filter(active=True))
            centers = list(FulfillmentCenter.objects.filter(active=True))
        rng = np.random.default_rng(options["history_seed"] + len(days))
        processes = demo_processes(products, centers, today=today, rng=rng)
        demand = {key: p.draw(days, origin, rng) for key, p in processes.items()}
        started = time.monotonic()
        written = order_history_write(
            client=client,
            demand=demand,
            days=days,
            # The benchmark packs a day's units of a centre into few big orders; the demo
            # writes orders of a few units of a few SKUs, as customers place them.
            lines_per_order=50 if bench else 4,
            units_per_line=100 if bench else 4,
            rng=rng,
        )
        self.stdout.write(
            f"order history {days[0]}..{days[-1]}: {written.orders} orders, "
            f"{written.lines} lines, {written.units} units, {written.returned} returned "
            f"({time.monotonic() - started:.1f} s)"
        )
