"""The "Portal admin" group sees and revokes API tokens in the Django admin (DESIGN.md: the
admin is for the add-credit log, events and tokens); a leaked gateway token should not need a
superuser to be revoked."""

from django.db import migrations

PERMISSIONS = [("view_apitoken", "Can view api token"), ("change_apitoken", "Can change api token")]


def forwards(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    group = Group.objects.filter(name="Portal admin").first()
    if group is None:
        return
    # Permissions are normally made after all migrations; the group needs them now.
    content_type, _ = ContentType.objects.get_or_create(app_label="accounts", model="apitoken")
    for codename, name in PERMISSIONS:
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
        group.permissions.add(permission)


def backwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="Portal admin").first()
    if group is not None:
        group.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label="accounts", codename__in=[c for c, _ in PERMISSIONS]
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_user_email_case_insensitive"),
        ("billing", "0002_portal_admin_group"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
