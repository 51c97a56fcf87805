"""Project-wide middleware."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest


class RefuseNulInAdminAddress:
    """The Django admin hands its list filters' values to the database as they came; a NUL
    byte in them (%00) is refused by PostgreSQL, which made a server error of it. The portal's
    own pages handle NUL themselves (People says what it left out of a search, the API answers
    404 for an address that cannot be an email); under /admin/ it is refused here with a 400."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        in_admin = request.path.startswith("/admin/")
        if in_admin and ("\x00" in request.path or "%00" in request.META.get("QUERY_STRING", "")):
            return HttpResponseBadRequest(
                "The address contains a NUL character (%00), which no page accepts.",
                content_type="text/plain",
            )
        return self.get_response(request)
