from __future__ import annotations

from celery import shared_task


# Acknowledged on receipt, unlike the pipeline's tasks: a run may take longer than the
# broker's visibility timeout, and a redelivered copy would start a second run. A run lost
# with its worker is simply the next night's; the previous results stay current meanwhile.
@shared_task(name="forecasting.forecast_demand", acks_late=False, time_limit=6 * 3600)
def forecast_demand() -> int | None:
    # Imported when it runs: every worker loads this module, few run a forecast.
    from forecasting.services import RunInProgress, forecast_run

    try:
        return forecast_run().pk
    except RunInProgress:
        return None
