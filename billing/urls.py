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
    path("people/<int:user_id>/account/balance/", views.people_balance, name="people_balance"),
    path(
        "people/<int:user_id>/account/billing-type/",
        views.billing_type_tab,
        name="billing_type_tab",
    ),
]
