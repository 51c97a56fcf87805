"""Test settings: the real settings with fast hashing and captured email.

The database is PostgreSQL when TEST_DATABASE_URL is set (CI), SQLite in memory otherwise.
"""

from __future__ import annotations

from portal.settings import *  # noqa: F403
from portal.settings import env

TEST_DATABASE_URL = env.str("TEST_DATABASE_URL", default="")
TEST_REDIS_URL = env.str("TEST_REDIS_URL", default="")
if TEST_DATABASE_URL:
    DATABASES = {"default": env.db_url_config(TEST_DATABASE_URL)}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_BROKER_URL = "memory://"
CELERY_TASK_ALWAYS_EAGER = True
STRIPE_SECRET_KEY = ""
STRIPE_WEBHOOK_SECRET = ""
