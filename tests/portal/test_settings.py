"""Settings fail loudly at start: a half-configured Stripe must not fall back to the offline
payment simulator, which credits without payment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = "import django; django.setup(); from billing.stripe_gateway import stripe_enabled; print('online' if stripe_enabled() else 'offline')"


def start(**stripe: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env.update(DJANGO_SETTINGS_MODULE="portal.settings", **stripe)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_no_stripe_settings_at_all_run_the_offline_simulator():
    result = start()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "offline"


def test_all_three_keys_run_stripe():
    result = start(
        STRIPE_SECRET_KEY="sk_test_x",
        STRIPE_PUBLISHABLE_KEY="pk_test_x",
        STRIPE_WEBHOOK_SECRET="whsec_x",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "online"


@pytest.mark.parametrize(
    "stripe, message",
    [
        ({"STRIPE_PUBLISHABLE_KEY": "pk_live_x"}, "STRIPE_SECRET_KEY is empty"),
        ({"STRIPE_WEBHOOK_SECRET": "whsec_live_x"}, "STRIPE_SECRET_KEY is empty"),
        (
            {
                "STRIPE_SECRET_KEY": "",
                "STRIPE_PUBLISHABLE_KEY": "pk_live_x",
                "STRIPE_WEBHOOK_SECRET": "whsec_x",
            },
            "STRIPE_SECRET_KEY is empty",
        ),
        ({"STRIPE_SECRET_KEY": "sk_live_x"}, "STRIPE_WEBHOOK_SECRET is required"),
    ],
)
def test_a_half_configured_stripe_refuses_to_start(stripe, message):
    result = start(**stripe)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


@pytest.mark.parametrize(
    "variable, value",
    [("DATABASE_URL", "garbage"), ("CACHE_URL", "nonsense://x"), ("DJANGO_DEBUG", "maybe")],
)
def test_a_malformed_variable_stops_the_start_with_its_name(variable, value):
    result = start(**{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and variable in result.stderr
