"""Send the low-balance alerts that are due and not yet sent (Celery beat runs the same every
10 minutes). Running it twice sends nothing twice."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.notifications.alerts import balance_alerts_sweep


class Command(BaseCommand):
    help = "Send the low-balance alerts that are due (each once)."

    def handle(self, *args: Any, **options: Any) -> None:
        sent = balance_alerts_sweep()
        self.stdout.write(f"{sent} low-balance alert email{'s' if sent != 1 else ''} sent.")
