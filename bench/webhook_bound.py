"""Bench-only URLs for bench/webhook.py: the cheapest webhook that still keeps an event log.

`/bench/verify-and-store/` does what any design must do before it may answer Stripe 2xx,
and nothing more: verify the signature, look the event up, store it if new. It credits
nothing, so it is the upper bound for a webhook that hands processing to a queue (which would
also pay for the publish, and for the processing on the same CPUs). Never mounted in the portal.
"""

from __future__ import annotations

import json

import stripe
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from billing.payments import stripe_gateway
from billing.webhooks import receive as webhooks
from portal.urls import urlpatterns as portal_urlpatterns


@csrf_exempt
def verify_and_store(request: HttpRequest) -> JsonResponse:
    payload = request.body
    stripe.WebhookSignature.verify_header(
        payload.decode("utf-8"),
        request.headers.get("Stripe-Signature", ""),
        stripe_gateway.webhook_secret(),
        webhooks.TOLERANCE_SECONDS,
    )
    event = json.loads(payload)
    if webhooks._event_status(event["id"]) is None:
        webhooks._event_store(event["id"], str(event["type"]), payload)
    return JsonResponse({"message": "Stored."})


urlpatterns = [
    *portal_urlpatterns,
    path("bench/verify-and-store/", verify_and_store),
]
