"""The "Portal admin" group gets the plan permissions (titles as the Drupal module's), and may
manage API products and rate plans in the Django admin."""

from django.db import migrations

PERMISSIONS = {
    "rateplan": [
        ("view_rate_plan", "View rate plan"),
        ("add_rateplan", "Can add rate plan"),
        ("change_rateplan", "Can change rate plan"),
        ("delete_rateplan", "Can delete rate plan"),
        ("view_rateplan", "Can view rate plan"),
    ],
    "apiproduct": [
        ("add_apiproduct", "Can add API product"),
        ("change_apiproduct", "Can change API product"),
        ("delete_apiproduct", "Can delete API product"),
        ("view_apiproduct", "Can view API product"),
    ],
    "subscription": [
        ("purchase_any_rate_plan", "Purchase any rate plan"),
        ("view_any_purchased_plan", "View any purchased plan"),
        ("update_any_purchased_plan", "Update any purchased plan"),
        ("view_subscription", "Can view subscription"),
    ],
}


def forwards(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
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
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="Portal admin").first()
    if group is not None:
        codenames = [codename for perms in PERMISSIONS.values() for codename, _ in perms]
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="billing", codename__in=codenames)
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0021_catalog_and_subscriptions")]

    operations = [migrations.RunPython(forwards, backwards)]
