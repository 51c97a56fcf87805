"""Settings fail loudly at start: a half-configured Stripe must not fall back to the offline
payment simulator, which credits without payment."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]
PROBE = "import django; django.setup(); from billing.payments.stripe_gateway import stripe_enabled; print('online' if stripe_enabled() else 'offline')"


def start(**stripe: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STRIPE_") and k != "CELERY_BROKER_URL"
    }
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
    [
        ("DATABASE_URL", "garbage"),
        ("CACHE_URL", "nonsense://x"),
        ("DJANGO_DEBUG", "maybe"),
        ("STRIPE_MAX_NETWORK_RETRIES", "two"),
        ("PORTAL_ORG", " "),
        ("CELERY_BROKER_URL", "redis//127.0.0.1:6379/0"),
        ("CELERY_BROKER_URL", "nonsense://127.0.0.1"),
    ],
)
def test_a_malformed_variable_stops_the_start_with_its_name(variable, value):
    result = start(**{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and variable in result.stderr


PRODUCTION = {
    "DJANGO_SECRET_KEY": "x" * 20 + "-production-secret-key-that-is-long-and-random-7f3a9",
    "DJANGO_ALLOWED_HOSTS": "portal.example.com",
    "DJANGO_SECURE_COOKIES": "true",
    "STRIPE_SECRET_KEY": "sk_live_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "EMAIL_URL": "smtp+tls://portal:secret@mail.example.com:587",
    "CACHE_URL": "redis://127.0.0.1:6379/1",
}


def manage(*args: str, **variables: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRIPE_", "DJANGO_"))
        and k not in ("DATABASE_URL", "EMAIL_URL", "CACHE_URL", "CELERY_BROKER_URL")
    }
    env.update(DJANGO_SETTINGS_MODULE="portal.settings", **variables)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_production_start_passes_djangos_deployment_checks(tmp_path):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        **PRODUCTION,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_with_the_offline_payment_simulator():
    variables = {k: v for k, v in PRODUCTION.items() if not k.startswith("STRIPE_")}
    result = start(**variables)
    assert result.returncode != 0
    assert "STRIPE_SECRET_KEY is required with DJANGO_SECURE_COOKIES=true" in result.stderr


def test_production_refuses_to_start_without_a_celery_broker():
    variables = {k: v for k, v in PRODUCTION.items() if k != "CELERY_BROKER_URL"}
    result = start(**variables)
    assert result.returncode != 0
    assert "CELERY_BROKER_URL is required with DJANGO_SECURE_COOKIES=true" in result.stderr


def test_the_demo_logins_are_never_created_in_production(tmp_path):
    database = f"sqlite:///{tmp_path}/db.sqlite3"
    assert manage("migrate", "-v0", DATABASE_URL=database, **PRODUCTION).returncode == 0

    result = manage("seed_demo", DATABASE_URL=database, **PRODUCTION)

    assert result.returncode != 0
    assert "it does not run with DJANGO_SECURE_COOKIES=true" in result.stderr
    count = manage(
        "shell",
        "-c",
        "from accounts.models import User; print(User.objects.count())",
        DATABASE_URL=database,
        **PRODUCTION,
    )
    assert count.stdout.strip().splitlines()[-1] == "0"


def test_behind_a_tls_proxy_its_header_counts_as_https():
    probe = "import django; django.setup(); from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings", DJANGO_PROXY_SSL_HEADER="X-Forwarded-Proto"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https')", result.stderr


def test_the_embedded_secret_key_is_made_once_private_and_kept(tmp_path):
    probe = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    var_dir = tmp_path / "state" / "portal"  # not there yet, nor its parent
    env.update(DJANGO_SETTINGS_MODULE="portal.settings", PORTAL_VAR_DIR=str(var_dir))

    def key() -> str:
        result = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
        )
        return result.stdout.strip()

    first, second = key(), key()

    assert len(first) >= 50 and first == second
    key_file = var_dir / "secret_key"
    assert key_file.read_text().strip() == first
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not [f for f in var_dir.iterdir() if f.name.startswith("secret_key.")]


@pytest.mark.django_db
def test_a_403_is_logged_in_one_line_without_a_traceback(client, admin_without_permission, caplog):
    """`make run` printed a traceback for every 403: a page answering as designed is no bug."""
    client.force_login(admin_without_permission)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get(reverse("monetization_settings"))

    assert response.status_code == HTTPStatus.FORBIDDEN
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert (
        record.getMessage() == "Forbidden (Permission denied): /admin/config/monetization/settings/"
    )
    assert record.exc_info is None


def test_make_run_on_another_port_links_emails_to_that_port():
    """Emails sent by workers linked to port 8000 whatever port `make run` served on."""
    dry_run = subprocess.run(
        ["make", "-n", "run", "PORT=8123"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout

    assert "PORTAL_BASE_URL=${PORTAL_BASE_URL:-http://127.0.0.1:8123}" in dry_run
    assert "runserver 127.0.0.1:8123" in dry_run


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("EMAIL_URL", None, "EMAIL_URL must name a real mail server"),
        ("EMAIL_URL", "consolemail://", "EMAIL_URL must name a real mail server"),
        ("EMAIL_URL", "filemail:///tmp/mail", "EMAIL_URL must name a real mail server"),
        ("CACHE_URL", None, "CACHE_URL must name a cache all web workers"),
        ("CACHE_URL", "locmemcache://", "CACHE_URL must name a cache all web workers"),
    ],
)
def test_production_refuses_to_start_with_mail_to_the_log_or_a_cache_per_worker(
    variable, value, message, tmp_path
):
    """With DJANGO_SECURE_COOKIES=true the console mail backend and the per-process cache were
    accepted: password-reset links landed in the log and sign-in limits counted per worker.
    `manage.py check --deploy` names what is missing."""
    variables = {k: v for k, v in PRODUCTION.items() if k != variable}
    if value is not None:
        variables[variable] = value
    result = manage(
        "check", "--deploy", DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3", **variables
    )
    assert result.returncode != 0
    assert message in result.stderr
