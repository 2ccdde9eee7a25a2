"""Seed the editable templates with the built-in defaults, so admin starts from text
that works. Later edits are staff's; this migration never overwrites them."""

from django.db import migrations


def seed(apps, schema_editor):
    from notifications.messages import DEFAULTS

    NotificationTemplate = apps.get_model("notifications", "NotificationTemplate")
    for (event_type, channel), message in DEFAULTS.items():
        NotificationTemplate.objects.get_or_create(
            event_type=event_type,
            channel=channel,
            defaults={"subject": message.subject, "body": message.body},
        )


class Migration(migrations.Migration):
    dependencies = [("notifications", "0002_templates_and_webhooks")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
