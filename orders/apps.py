from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from orders import receivers  # noqa: F401  (connects the signal receivers)
        from orders.roles import roles_sync

        post_migrate.connect(roles_sync, sender=self, dispatch_uid="orders.roles_sync")
