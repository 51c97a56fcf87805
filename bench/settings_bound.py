"""Settings for the gunicorn that bench/webhook.py starts: the portal's, plus webhook_bound."""

from portal.settings import *  # noqa: F403

ROOT_URLCONF = "webhook_bound"
