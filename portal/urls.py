from __future__ import annotations

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from billing.api import api
from portal import views

admin.site.site_header = "Developer portal administration"
# One sign-in page for everybody: allauth's, which limits failed attempts. Django's own admin
# form has no limit, so it would let staff passwords be guessed.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]
admin.site.site_title = "Developer portal admin"
# A handful of models: the sidebar took a third of the width the audit log's rows need.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    # Before the pages: a gateway's calls come many a second, and each pattern tried costs.
    path("v1/", api.urls),
    path("", include("billing.urls")),
    path("account/", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("people/", views.people_list, name="people_list"),
    path("people/<int:user_id>/account/", views.people_account, name="people_account"),
    path("admin/", admin.site.urls),
]
