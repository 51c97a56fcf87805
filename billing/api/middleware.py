"""Middleware that keeps every answer under /v1/ an API answer."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from billing.api.errors import error_response


class JsonErrorsUnderV1:
    """Middleware: every error Django answers under /v1/ itself (unknown path or method, a body
    too large to read, a failure on the server) comes as the API's error JSON, not an HTML page,
    so that scripts can read every error the same way."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and request.path.startswith("/v1/")
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            message = self._message(request, response)
            json_response = error_response(request, response.status_code, message)
            if response.has_header("Allow"):
                json_response["Allow"] = response["Allow"]
            return json_response
        return response

    @staticmethod
    def _message(request: HttpRequest, response: HttpResponse) -> str:
        if response.status_code == 404:
            return f"No API endpoint at {request.path}."
        if response.status_code == 405:
            return f"{request.method} is not allowed here; allowed: {response.get('Allow', '')}."
        if response.status_code == 400:
            # Django refused the request before the API saw it; say why where it is known.
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            try:
                too_large = int(request.META.get("CONTENT_LENGTH") or 0) > limit
            except ValueError:
                too_large = False
            if too_large:
                return f"The request could not be read: a body may hold at most {limit:,} bytes."
            return "The request could not be read."
        if response.status_code >= 500:
            return "The server failed to handle this request. Try again later."
        return f"{response.reason_phrase}."


class HeadAsGetUnderV1:
    """Middleware: HEAD is answered as GET without the body (RFC 9110 9.3.2), as the pages do.
    django-ninja routes HEAD to no operation, so uptime checks and link checkers got 405."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/v1/"):
            return self.get_response(request)
        if request.method != "HEAD":
            return self._allow_head(self.get_response(request))
        request.method = "GET"
        try:
            return self.get_response(request)
        finally:
            # The server leaves the body out of HEAD answers; it looks at the method again.
            request.method = "HEAD"

    @staticmethod
    def _allow_head(response: HttpResponse) -> HttpResponse:
        """A 405 lists every method the resource takes (RFC 9110 15.5.6): with GET, HEAD."""
        allowed = [method.strip() for method in response.get("Allow", "").split(",")]
        if response.status_code == 405 and "GET" in allowed and "HEAD" not in allowed:
            response["Allow"] = ", ".join([*allowed, "HEAD"])
        return response
