import datetime

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from orders.enums import OrderStatus
from orders.models import Order


class UtcIsoDateTimeField(IsoDateTimeField):
    """In UTC before it reaches the database: PostgreSQL refuses offsets past ±15:59
    (`+23:17` is valid ISO 8601 and Python), which was a 500."""

    def to_python(self, value: object) -> datetime.datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(datetime.UTC)
        except OverflowError:
            raise forms.ValidationError("Date-time out of range.", code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class OrderFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=OrderStatus.choices)
    customer_id = django_filters.CharFilter(max_length=64)
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Order
        fields = ["status", "customer_id", "created_after", "created_before"]
