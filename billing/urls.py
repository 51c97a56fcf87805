from __future__ import annotations

from django.urls import path

from billing import views

urlpatterns = [
    path(
        "admin/config/monetization/settings/",
        views.monetization_settings,
        name="monetization_settings",
    ),
    path("account/balance/", views.my_balance, name="my_balance"),
    path("account/balance/add-credit/<str:currency>/", views.add_credit, name="add_credit"),
    path("account/balance/top-ups/<uuid:public_id>/", views.top_up_status, name="top_up_status"),
    path(
        "account/balance/top-ups/<uuid:public_id>/cancel/",
        views.top_up_cancel_view,
        name="top_up_cancel",
    ),
    path(
        "account/balance/top-ups/<uuid:public_id>/test-payment/",
        views.test_payment,
        name="test_payment",
    ),
    path("account/balance/card/", views.card_setup, name="card_setup"),
    path("account/balance/card/saved/", views.card_saved, name="card_saved"),
    path("account/balance/card/test/", views.test_card, name="test_card"),
    path(
        "account/balance/auto-recharge/<str:currency>/",
        views.auto_recharge_settings,
        name="auto_recharge_settings",
    ),
    path("stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
    path("people/<int:user_id>/account/balance/", views.people_balance, name="people_balance"),
    path(
        "people/<int:user_id>/account/billing-type/",
        views.billing_type_tab,
        name="billing_type_tab",
    ),
]
