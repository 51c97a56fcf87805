"""Create the organisation settings row and the "Portal admin" group holding the billing permissions."""

from django.db import migrations

PERMISSIONS = {
    "organizationsettings": [("administer_monetization", "Administer monetization")],
    "billingaccount": [
        ("update_any_billing_type", "Update any billing type"),
        ("view_any_prepaid_balance", "View any prepaid balance"),
        ("adjust_any_prepaid_balance", "Adjust any prepaid balance"),
        ("view_add_credit_log", "View Add Credit Log"),
    ],
}


def forwards(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    OrganizationSettings = apps.get_model("billing", "OrganizationSettings")

    OrganizationSettings.objects.get_or_create(pk=1)
    group, _ = Group.objects.get_or_create(name="Portal admin")
    # Permissions are normally made after all migrations; the group needs them now.
    for model, perms in PERMISSIONS.items():
        content_type, _ = ContentType.objects.get_or_create(app_label="billing", model=model)
        for codename, name in perms:
            permission, _ = Permission.objects.get_or_create(
                content_type=content_type, codename=codename, defaults={"name": name}
            )
            group.permissions.add(permission)


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Portal admin").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
