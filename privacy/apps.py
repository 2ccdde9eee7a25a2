from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PrivacyConfig(AppConfig):
    name = "privacy"

    def ready(self) -> None:
        from orders.roles import roles_sync
        from privacy import metrics  # noqa: F401  (the redaction counter, at 0 from the start)

        # The role groups are synced after the orders app migrates, before this app's
        # permissions exist on a fresh database: sync them again once they do.
        post_migrate.connect(roles_sync, sender=self, dispatch_uid="privacy.roles_sync")
