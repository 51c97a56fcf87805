"""The "Portal admin" group reads the audit log in the Django admin (read-only, as for every
user): the admins whose actions it records can see who changed what, without a superuser."""

from django.db import migrations

CODENAME = "view_auditlogentry"


def forwards(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    group = Group.objects.filter(name="Portal admin").first()
    if group is None:
        return
    # Permissions are normally made after all migrations; the group needs this one now.
    content_type, _ = ContentType.objects.get_or_create(app_label="billing", model="auditlogentry")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type,
        codename=CODENAME,
        defaults={"name": "Can view audit log entry"},
    )
    group.permissions.add(permission)


def backwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="Portal admin").first()
    if group is not None:
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="billing", codename=CODENAME)
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0014_top_up_flags")]

    operations = [migrations.RunPython(forwards, backwards)]
