import django_filters

from notifications.enums import WebhookStatus
from notifications.models import WebhookDelivery


class WebhookDeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=WebhookStatus.choices)
    order_id = django_filters.UUIDFilter(field_name="order_id")

    class Meta:
        model = WebhookDelivery
        fields = ["status", "order_id"]
