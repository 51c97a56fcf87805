"""Receipts (issue 13): the card an auto-recharge charged, kept on its top-up, and the
notifications owed and sent once. Nothing is owed for money moved before this migration, so
nobody is sent receipts for old payments."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0018_organization_settings_row'),
    ]

    operations = [
        migrations.AddField(
            model_name='topup',
            name='card_brand',
            field=models.CharField(blank=True, default='', max_length=20),
        ),
        migrations.AddField(
            model_name='topup',
            name='card_last4',
            field=models.CharField(blank=True, default='', max_length=4),
        ),
        migrations.CreateModel(
            name='SentNotification',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=255, unique=True)),
                ('kind', models.CharField(choices=[('TOP_UP_RECEIPT', 'Top-up receipt'), ('REFUND_RECEIPT', 'Refund receipt'), ('DISPUTE_RECEIPT', 'Dispute receipt')], max_length=30)),
                ('reference', models.CharField(max_length=255)),
                ('recipient', models.CharField(blank=True, default='', max_length=254)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('claimed_at', models.DateTimeField(blank=True, null=True)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'indexes': [models.Index(condition=models.Q(('sent_at__isnull', True)), fields=['created_at'], name='notification_unsent')],
            },
        ),
    ]
