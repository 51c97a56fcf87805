"""Whether the admins were emailed about a failing Stripe event, instead of "at its first
failure": an email the mail server refused is sent again at the next failure."""

from django.db import migrations, models


def failed_before_were_notified(apps, schema_editor):
    # Events that failed before this were emailed at their first failure (or the mail was lost,
    # which cannot be told now): do not email them again at Stripe's next retry.
    StripeEvent = apps.get_model("billing", "StripeEvent")
    StripeEvent.objects.filter(attempts__gte=1, status="FAILED").update(admins_notified=True)


class Migration(migrations.Migration):
    dependencies = [("billing", "0016_recharge_attempt_idempotency_key")]

    operations = [
        migrations.AddField(
            model_name="stripeevent",
            name="admins_notified",
            field=models.BooleanField(db_default=False),
        ),
        migrations.RunPython(failed_before_were_notified, migrations.RunPython.noop),
    ]
