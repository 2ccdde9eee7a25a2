from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from privacy.services import pii_redact_expired


class Command(BaseCommand):
    help = (
        "Redact the personal data the retention rules let go (what the daily job does): "
        "orders ended more than COT_PII_RETENTION_DAYS ago, in every place their data is "
        "copied; prescriptions after 2 years; H1 register rows after 3. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="List what is due; change nothing."
        )

    def handle(self, *args: Any, dry_run: bool, **options: Any) -> None:
        run = pii_redact_expired(dry_run=dry_run)
        verb = "due" if dry_run else "redacted"
        for label, ids in (
            ("orders", run.orders),
            ("prescriptions", run.prescriptions),
            ("orders' H1 register rows", run.registers),
        ):
            self.stdout.write(f"{label} {verb}: {len(ids)}")
            if dry_run and options["verbosity"] > 1:
                for subject_id in ids:
                    self.stdout.write(f"  {subject_id}")
        for store, count in sorted(run.rows.items()):
            self.stdout.write(f"  {store}: {count} rows")
