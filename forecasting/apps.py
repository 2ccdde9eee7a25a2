from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ForecastingConfig(AppConfig):
    name = "forecasting"
    verbose_name = "Forecasting and replenishment"

    def ready(self) -> None:
        from orders.roles import roles_sync

        # The inventory role's grants here exist only once this app's permissions do,
        # which is after the orders app's own post_migrate: sync the roles again then.
        post_migrate.connect(roles_sync, sender=self, dispatch_uid="forecasting.roles_sync")
