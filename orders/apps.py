from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from core.metrics import collector_register
        from orders import receivers  # noqa: F401  (connects the signal receivers)
        from orders.metrics import OrdersInFlightCollector
        from orders.roles import roles_sync
        from orders.selectors import orders_waiting_on_prescriptions
        from prescriptions.selectors import waiting_orders_source_register

        collector_register("orders_in_flight", OrdersInFlightCollector())
        # The prescriptions app never imports orders: it is handed this query instead.
        waiting_orders_source_register(orders_waiting_on_prescriptions)

        post_migrate.connect(roles_sync, sender=self, dispatch_uid="orders.roles_sync")
