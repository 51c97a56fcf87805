"""DESIGN.md's outside contract, pinned by name: the page paths, the environment variables and
their embedded defaults, and the permissions' codenames and titles. Scripts, bookmarks and
deployments rely on these exact names, so a rename must fail here first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import resolve, reverse

ROOT = Path(__file__).resolve().parents[2]

# DESIGN.md "Pages": (URL name, arguments, the path people and scripts use).
PAGES = [
    ("account_signup", [], "/accounts/signup/"),
    ("account_login", [], "/accounts/login/"),
    ("account_logout", [], "/accounts/logout/"),
    ("my_account", [], "/account/"),
    ("my_balance", [], "/account/balance/"),
    ("people_list", [], "/people/"),
    ("people_account", [7], "/people/7/account/"),
    ("billing_type_tab", [7], "/people/7/account/billing-type/"),
    ("people_balance", [7], "/people/7/account/balance/"),
    ("monetization_settings", [], "/admin/config/monetization/settings/"),
    ("plans", [], "/plans/"),
    ("plan_purchase", ["weather-api"], "/plans/weather-api/purchase/"),
    ("my_plans", [], "/account/plans/"),
    ("people_plans", [7], "/people/7/account/plans/"),
    ("my_apps", [], "/account/apps/"),
    ("my_usage", [], "/account/usage/"),
    ("people_usage", [7], "/people/7/account/usage/"),
    ("people_apps", [7], "/people/7/account/apps/"),
    ("my_statements", [], "/account/balance/statements/"),
    ("my_statement_file", ["USD", "2026-11", "csv"], "/account/balance/statements/USD/2026-11.csv"),
    ("my_statement_file", ["USD", "2026-11", "pdf"], "/account/balance/statements/USD/2026-11.pdf"),
    ("people_statements", [7], "/people/7/account/balance/statements/"),
    ("revenue_report", [], "/admin/reports/revenue/"),
    ("admin:index", [], "/admin/"),
    ("stripe_webhook", [], "/stripe/webhook/"),
    ("api_v1:openapi-json", [], "/v1/openapi.json"),
]


@pytest.mark.parametrize("name, args, path", PAGES, ids=[p for _, _, p in PAGES])
def test_each_page_lives_at_the_path_of_the_contract(name, args, path):
    assert reverse(name, args=args) == path
    assert resolve(path).view_name == name


# DESIGN.md "Permissions": codename -> the Drupal module's title.
PERMISSIONS = {
    "billing.update_any_billing_type": "Update any billing type",
    "billing.administer_monetization": "Administer monetization",
    "billing.view_any_prepaid_balance": "View any prepaid balance",
    "billing.adjust_any_prepaid_balance": "Adjust any prepaid balance",
    "billing.view_add_credit_log": "View Add Credit Log",
    "billing.view_rate_plan": "View rate plan",
    "billing.purchase_any_rate_plan": "Purchase any rate plan",
    "billing.view_any_purchased_plan": "View any purchased plan",
    "billing.update_any_purchased_plan": "Update any purchased plan",
    "billing.view_revenue_reports": "View revenue reports",
}


@pytest.mark.django_db
def test_permissions_keep_their_codenames_and_drupal_titles_in_the_portal_admin_group():
    group = Group.objects.get(name="Portal admin")
    held = {
        f"{p.content_type.app_label}.{p.codename}": p.name
        for p in group.permissions.select_related("content_type")
    }
    assert {code: held.get(code) for code in PERMISSIONS} == PERMISSIONS
    for code, title in PERMISSIONS.items():
        app_label, codename = code.split(".")
        found = Permission.objects.get(content_type__app_label=app_label, codename=codename)
        assert found.name == title


CONTRACT_VARIABLES = (
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "PORTAL_ORG",
    "EMAIL_URL",
)
PROBE = """
import json, django
django.setup()
from django.conf import settings as s
from billing.payments.stripe_gateway import stripe_enabled
print(json.dumps({
    "secret_key": s.SECRET_KEY, "debug": s.DEBUG, "allowed_hosts": s.ALLOWED_HOSTS,
    "engine": s.DATABASES["default"]["ENGINE"], "database": str(s.DATABASES["default"]["NAME"]),
    "tasks_in_process": s.CELERY_TASK_ALWAYS_EAGER, "broker": s.CELERY_BROKER_URL,
    "stripe": stripe_enabled(), "stripe_api_base": s.STRIPE_API_BASE,
    "publishable_key": s.STRIPE_PUBLISHABLE_KEY, "org": s.PORTAL_ORG,
    "email_backend": s.EMAIL_BACKEND,
}))
"""


def settings_under(tmp_path: Path, **variables: str) -> dict:
    """The real settings (not the tests'), started with only these contract variables set."""
    env = {k: v for k, v in os.environ.items() if k not in CONTRACT_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE="portal.settings", PORTAL_VAR_DIR=str(tmp_path), **variables)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_make_run_needs_no_variable_and_gets_the_embedded_defaults(tmp_path):
    found = settings_under(tmp_path)

    assert found["debug"] is False
    assert found["engine"] == "django.db.backends.sqlite3"
    assert Path(found["database"]).parent == tmp_path  # a SQLite file under var/
    assert found["tasks_in_process"] is True
    assert found["stripe"] is False  # the offline payment simulator
    assert found["org"] == "demo-org"
    assert found["email_backend"] == "django.core.mail.backends.console.EmailBackend"


def test_each_contract_variable_is_read(tmp_path):
    found = settings_under(
        tmp_path,
        DJANGO_SECRET_KEY="a-secret-key-from-the-environment-0123456789",
        DJANGO_DEBUG="true",
        DJANGO_ALLOWED_HOSTS="portal.example.com,api.example.com",
        DATABASE_URL="postgres://portal@db.example.com:5432/portal",
        CELERY_BROKER_URL="redis://redis.example.com:6379/0",
        STRIPE_SECRET_KEY="sk_test_x",
        STRIPE_PUBLISHABLE_KEY="pk_test_x",
        STRIPE_WEBHOOK_SECRET="whsec_x",
        STRIPE_API_BASE="http://127.0.0.1:12111",
        PORTAL_ORG="acme",
        EMAIL_URL="smtp://mail.example.com:587",
    )

    assert found["secret_key"] == "a-secret-key-from-the-environment-0123456789"
    assert found["debug"] is True
    assert found["allowed_hosts"] == ["portal.example.com", "api.example.com"]
    assert (found["engine"], found["database"]) == ("django.db.backends.postgresql", "portal")
    assert found["tasks_in_process"] is False
    assert found["broker"] == "redis://redis.example.com:6379/0"
    assert found["stripe"] is True and found["publishable_key"] == "pk_test_x"
    assert found["stripe_api_base"] == "http://127.0.0.1:12111"
    assert found["org"] == "acme"
    assert found["email_backend"] == "django.core.mail.backends.smtp.EmailBackend"
