"""The out-for-delivery message tells the customer's delivery OTP (proof of delivery for
prescription parcels). Seeded templates staff never edited get the new default text;
edited ones are left alone (the OTP sentence is added after them when rendered)."""

from django.db import migrations

EVENT = "shipment.out_for_delivery"
_FOOTER = (
    "\n\nItems:\n"
    "{% for item in items %}- {{ item.name }} x {{ item.quantity }}\n{% endfor %}"
    "Total: {{ total }}\n\nCOT Pharmacy"
)
# The seeded text before and after, frozen here: later edits of the defaults are not this
# migration's.
BEFORE = {
    "sms": "Your order {{ number }} is out for delivery and will reach you today.",
    "email": "Hello {{ name }},\n\nyour order {{ number }} is out for delivery and will reach "
    "you today. Track it: {{ tracking_url }}" + _FOOTER,
}
AFTER = {
    "sms": "Your order {{ number }} is out for delivery and will reach you today."
    "{% if delivery_otp %} Give the courier this OTP to receive it: "
    "{{ delivery_otp }}{% endif %}",
    "email": "Hello {{ name }},\n\nyour order {{ number }} is out for delivery and will reach "
    "you today. Track it: {{ tracking_url }}{% if delivery_otp %}\n\nThe courier hands "
    "it over only against this OTP: {{ delivery_otp }}. Give it to nobody else."
    "{% endif %}" + _FOOTER,
}


def _replace(apps, old: dict[str, str], new: dict[str, str]) -> None:
    template_model = apps.get_model("notifications", "NotificationTemplate")
    for channel, body in old.items():
        template_model.objects.filter(event_type=EVENT, channel=channel, body=body).update(
            body=new[channel]
        )


def forwards(apps, schema_editor):
    _replace(apps, BEFORE, AFTER)


def backwards(apps, schema_editor):
    _replace(apps, AFTER, BEFORE)


class Migration(migrations.Migration):
    dependencies = [("notifications", "0005_per_event_messages")]

    operations = [migrations.RunPython(forwards, backwards)]
