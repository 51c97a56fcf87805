from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("billing", "0019_receipts")]

    operations = [
        migrations.AddField(
            model_name="organizationsettings",
            name="support_email",
            field=models.EmailField(blank=True, default="", max_length=254),
        ),
    ]
