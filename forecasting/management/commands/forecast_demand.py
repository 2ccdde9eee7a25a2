from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from forecasting.selectors import forecast_run_succeeded
from forecasting.services import RunInProgress, UnknownScope, forecast_run


class Command(BaseCommand):
    help = (
        "Build daily demand from confirmed orders (less returns), forecast the next 28 days "
        "per SKU and centre with prediction intervals and a backtest, and plan replenishment. "
        "The results become current only when the whole run succeeds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sku", action="append", default=[], help="Only this SKU (repeatable)."
        )
        parser.add_argument(
            "--center", action="append", default=[], help="Only this centre's code (repeatable)."
        )
        parser.add_argument(
            "--as-of",
            type=datetime.date.fromisoformat,
            default=None,
            help="Forecast from this day (YYYY-MM-DD; default today), on the history before it.",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
        parser.add_argument(
            "--unless-current",
            action="store_true",
            help="Do nothing when a run as of the same day already succeeded (make run).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = options["as_of"] or timezone.localdate()
        if options["unless_current"] and forecast_run_succeeded(as_of=as_of):
            self.stdout.write(f"a forecast as of {as_of} is current already")
            return
        bar = tqdm(
            total=0,
            unit="series",
            desc="forecasting",
            disable=options["no_progress"] or options["verbosity"] < 1,
            file=self.stderr._out,
        )

        def start(total: int) -> None:
            bar.reset(total=total)

        try:
            run = forecast_run(
                as_of=as_of,
                skus=options["sku"],
                centers=options["center"],
                on_start=start,
                on_progress=bar.update,
            )
        except (UnknownScope, RunInProgress) as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        self.stdout.write(
            f"forecast run {run.pk}: {run.series} series as of {run.as_of}, "
            f"{(run.finished_at - run.started_at).total_seconds():.1f} s"
        )
