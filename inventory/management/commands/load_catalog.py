from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inventory.services import CatalogError, catalog_load


class Command(BaseCommand):
    help = "Load products, fulfilment centres and stock batches from a JSON file (all or nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, path: Path, **options: Any) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        except ValueError as exc:
            raise CommandError(f"{path} is not valid JSON: {exc}") from exc
        try:
            counts = catalog_load(data)
        except CatalogError as exc:
            raise CommandError(f"nothing loaded; bad entry {exc}") from exc
        self.stdout.write(
            f"loaded {counts.products} products, {counts.centers} centres, "
            f"{counts.stock} stock batches from {path}"
        )
