from __future__ import annotations

from django.urls import path, re_path

from billing.web import (
    add_credit,
    apps,
    auto_recharge,
    balance,
    billing_type,
    catalog,
    reports,
    settings,
    spending,
    statements,
    subscriptions,
    usage,
)
from billing.webhooks import views as webhooks

# A statement's address: its currency and month, as in /account/balance/statements/USD/2026-11.csv.
_STATEMENT = r"(?P<currency>[A-Z]{3})/(?P<month>[0-9]{4}-[0-9]{2})"

urlpatterns = [
    path(
        "admin/config/monetization/settings/",
        settings.monetization_settings,
        name="monetization_settings",
    ),
    path("admin/reports/revenue/", reports.revenue_report_view, name="revenue_report"),
    path("account/balance/", balance.my_balance, name="my_balance"),
    path(
        "account/balance/alerts/<str:currency>/amount/",
        spending.alert_amount,
        name="alert_amount",
    ),
    path(
        "account/balance/alerts/<int:alert_id>/dismiss/",
        balance.balance_alert_dismiss,
        name="balance_alert_dismiss",
    ),
    path("account/balance/add-credit/<str:currency>/", add_credit.add_credit, name="add_credit"),
    path(
        "account/balance/top-ups/<uuid:public_id>/",
        add_credit.top_up_status,
        name="top_up_status",
    ),
    path(
        "account/balance/top-ups/<uuid:public_id>/cancel/",
        add_credit.top_up_cancel_view,
        name="top_up_cancel",
    ),
    path(
        "account/balance/top-ups/<uuid:public_id>/test-payment/",
        add_credit.test_payment,
        name="test_payment",
    ),
    path("account/balance/card/", auto_recharge.card_setup, name="card_setup"),
    path("account/balance/card/saved/", auto_recharge.card_saved, name="card_saved"),
    path("account/balance/card/test/", auto_recharge.test_card, name="test_card"),
    path(
        "account/balance/auto-recharge/<str:currency>/",
        auto_recharge.auto_recharge_settings,
        name="auto_recharge_settings",
    ),
    path("plans/", catalog.plans, name="plans"),
    path(
        "plans/<slug:product_name>/purchase/",
        subscriptions.plan_purchase,
        name="plan_purchase",
    ),
    path("account/plans/", subscriptions.my_plans, name="my_plans"),
    path(
        "account/plans/<uuid:public_id>/cancel/",
        subscriptions.my_plan_cancel,
        name="my_plan_cancel",
    ),
    path("account/apps/", apps.my_apps, name="my_apps"),
    path("account/usage/", usage.my_usage, name="my_usage"),
    path("account/usage/charges/<int:entry_id>/", usage.my_usage_entry, name="my_usage_entry"),
    path("people/<int:user_id>/account/usage/", usage.people_usage, name="people_usage"),
    path(
        "people/<int:user_id>/account/usage/charges/<int:entry_id>/",
        usage.people_usage_entry,
        name="people_usage_entry",
    ),
    path("account/apps/<uuid:public_id>/keys/", apps.my_app_key_add, name="my_app_key_add"),
    path(
        "account/apps/<uuid:public_id>/keys/<str:prefix>/revoke/",
        apps.my_app_key_revoke,
        name="my_app_key_revoke",
    ),
    path("account/apps/<uuid:public_id>/delete/", apps.my_app_delete, name="my_app_delete"),
    path("account/balance/statements/", statements.my_statements, name="my_statements"),
    re_path(
        rf"^account/balance/statements/{_STATEMENT}/$",
        statements.my_statement,
        {"fmt": "html"},
        name="my_statement",
    ),
    re_path(
        rf"^account/balance/statements/{_STATEMENT}\.(?P<fmt>csv|pdf)$",
        statements.my_statement,
        name="my_statement_file",
    ),
    path(
        "people/<int:user_id>/account/balance/statements/",
        statements.people_statements,
        name="people_statements",
    ),
    re_path(
        rf"^people/(?P<user_id>[0-9]+)/account/balance/statements/{_STATEMENT}/$",
        statements.people_statement,
        {"fmt": "html"},
        name="people_statement",
    ),
    re_path(
        rf"^people/(?P<user_id>[0-9]+)/account/balance/statements/{_STATEMENT}\.(?P<fmt>csv|pdf)$",
        statements.people_statement,
        name="people_statement_file",
    ),
    path("stripe/webhook/", webhooks.stripe_webhook, name="stripe_webhook"),
    path("people/<int:user_id>/account/balance/", balance.people_balance, name="people_balance"),
    path(
        "people/<int:user_id>/account/billing-type/",
        billing_type.billing_type_tab,
        name="billing_type_tab",
    ),
    path("people/<int:user_id>/account/plans/", subscriptions.people_plans, name="people_plans"),
    path(
        "people/<int:user_id>/account/plans/<uuid:public_id>/cancel/",
        subscriptions.people_plan_cancel,
        name="people_plan_cancel",
    ),
    path("people/<int:user_id>/account/apps/", apps.people_apps, name="people_apps"),
    path(
        "people/<int:user_id>/account/apps/<uuid:public_id>/keys/<str:prefix>/revoke/",
        apps.people_app_key_revoke,
        name="people_app_key_revoke",
    ),
]
