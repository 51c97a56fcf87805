"""Out of the box: USD top-ups of 5 to 500 (10 suggested), and three trust tiers."""

from django.db import migrations

UNIT = 10**9
TIERS = [(1, "New", 100, 500), (2, "Established", 500, 2_000), (3, "Trusted", 500, 10_000)]


def forwards(apps, schema_editor):
    TopUpLimit = apps.get_model("billing", "TopUpLimit")
    TrustTier = apps.get_model("billing", "TrustTier")
    TopUpLimit.objects.get_or_create(
        currency="USD", defaults={"minimum": 5 * UNIT, "maximum": 500 * UNIT, "default": 10 * UNIT}
    )
    for level, name, single, monthly in TIERS:
        TrustTier.objects.get_or_create(
            level=level,
            currency="USD",
            defaults={
                "name": name,
                "max_single_purchase": single * UNIT,
                "max_monthly_total": monthly * UNIT,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_top_ups")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
