"""Give the "Portal admin" group the permission to charge usage through the API."""

from django.db import migrations


def forwards(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="billing", model="billingaccount")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type,
        codename="debit_any_prepaid_balance",
        defaults={"name": "Charge usage to any prepaid balance"},
    )
    Group.objects.get(name="Portal admin").permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_wallets_and_ledger")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
