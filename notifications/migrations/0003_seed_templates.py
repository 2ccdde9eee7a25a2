"""Seed the editable templates with the built-in defaults, so admin starts from text
that works. Later edits are staff's; this migration never overwrites them."""

from django.db import migrations


def seed(apps, schema_editor):
    from notifications.messages import default_templates_seed

    default_templates_seed(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("notifications", "0002_templates_and_webhooks")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
