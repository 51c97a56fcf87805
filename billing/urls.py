from __future__ import annotations

from django.urls import path

from billing import views

urlpatterns = [
    path(
        "admin/config/monetization/settings/",
        views.monetization_settings,
        name="monetization_settings",
    ),
    path(
        "people/<int:user_id>/account/billing-type/",
        views.billing_type_tab,
        name="billing_type_tab",
    ),
]
