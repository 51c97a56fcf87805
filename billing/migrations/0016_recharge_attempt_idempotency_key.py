"""Each recharge attempt keeps its own random Stripe idempotency key. Attempts made before keep
the key they were charged under (auto-recharge-attempt-<id>), so a retry after the upgrade
replays their charge instead of making a second one."""

from django.db import migrations, models
from django.db.models import Value
from django.db.models.functions import Cast, Concat

import billing.models


def keep_the_old_keys(apps, schema_editor):
    RechargeAttempt = apps.get_model("billing", "RechargeAttempt")
    RechargeAttempt.objects.update(
        idempotency_key=Concat(Value("auto-recharge-attempt-"), Cast("id", models.CharField()))
    )


class Migration(migrations.Migration):
    dependencies = [("billing", "0015_portal_admin_reads_audit_log")]

    operations = [
        migrations.AddField(
            model_name="rechargeattempt",
            name="idempotency_key",
            field=models.CharField(
                default=billing.models._recharge_idempotency_key, editable=False, max_length=255
            ),
        ),
        migrations.RunPython(keep_the_old_keys, migrations.RunPython.noop),
    ]
