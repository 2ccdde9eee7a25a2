from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from orders.roles import roles_sync

        post_migrate.connect(roles_sync, sender=self, dispatch_uid="orders.roles_sync")
