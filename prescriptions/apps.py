from django.apps import AppConfig


class PrescriptionsConfig(AppConfig):
    name = "prescriptions"

    def ready(self) -> None:
        from core.metrics import collector_register
        from prescriptions.metrics import ReviewQueueCollector

        # cot_rx_pending_reviews and cot_rx_oldest_wait_seconds, read at scrape time.
        collector_register("rx_review_queue", ReviewQueueCollector())
