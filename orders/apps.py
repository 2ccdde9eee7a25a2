from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from core.metrics import collector_register
        from orders import receivers  # noqa: F401  (connects the signal receivers)
        from orders.metrics import OrdersInFlightCollector
        from orders.roles import roles_sync

        collector_register("orders_in_flight", OrdersInFlightCollector())

        post_migrate.connect(roles_sync, sender=self, dispatch_uid="orders.roles_sync")
