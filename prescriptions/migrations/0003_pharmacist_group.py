"""The pharmacist group with exactly what reviewing prescriptions needs.

`orders.roles.roles_sync` (run after every migrate) adds the read access to orders and
products that the group also needs; this migration makes the group and its core
permissions exist from the first migrate on, whatever runs later."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

PHARMACIST_PERMISSIONS = [
    "view_prescription",
    "change_prescription",
    "review_prescription",
    "view_prescriptionitem",
    "view_dispensation",
    "view_h1registerentry",
]


def create_pharmacist_group(apps, schema_editor):
    # Permissions are normally created after all migrations; make sure they exist now.
    app_config = apps.get_app_config("prescriptions")
    # A migration's app config is a stub without models_module, which create_permissions
    # takes for "no models"; the usual workaround is to mark it for the call.
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="pharmacist")
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="prescriptions", codename__in=PHARMACIST_PERMISSIONS
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("prescriptions", "0002_dispensations_h1_register"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_pharmacist_group, migrations.RunPython.noop)]
