from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # The wiring of facts to reactions (billing/reactions.py): ready() runs in web
        # processes, Celery workers and management commands alike.
        from billing import reactions  # noqa: PLC0415 - the app registry is ready only now

        reactions.register()
