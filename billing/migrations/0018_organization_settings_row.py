"""The organisation's settings row exists from the start, so reading it never writes
(billing_accounts.selectors.organization_settings_get is a pure read)."""

from django.db import migrations


def create_the_row(apps, schema_editor):
    OrganizationSettings = apps.get_model("billing", "OrganizationSettings")
    OrganizationSettings.objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("billing", "0017_stripe_event_admins_notified")]

    operations = [migrations.RunPython(create_the_row, migrations.RunPython.noop)]
