"""Settings for the developer portal, read from the environment (see README)."""

from __future__ import annotations

import os
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
# Where the embedded defaults keep their state: the SQLite file, the secret key, static files.
VAR_DIR = Path(env.str("PORTAL_VAR_DIR", default=str(BASE_DIR / "var")))


def _env_or_fail(reader, name: str, **kwargs):
    """Read one variable; a malformed value stops the start with the variable's name."""
    try:
        return reader(name, **kwargs)
    except (ValueError, ImproperlyConfigured, KeyError) as exc:
        raise ImproperlyConfigured(f"Environment variable {name} is malformed: {exc}") from exc


def _strict_bool(name: str, *, default: bool) -> bool:
    """env.bool reads any unknown word as False; a typo must not silently switch a flag."""
    value = env.str(name, default=str(default)).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not one of true/false, 1/0, yes/no, on/off")


DEBUG = _env_or_fail(_strict_bool, "DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    # Embedded default: one random key kept in var/, so sessions survive restarts and workers.
    from django.core.management.utils import get_random_secret_key

    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        # Written aside and linked into place: of several processes starting at once (gunicorn
        # workers), exactly one key wins and none reads a half-written file.
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        _draft = VAR_DIR / f"secret_key.{os.getpid()}"
        _draft.write_text(get_random_secret_key())
        _draft.chmod(0o600)
        try:
            os.link(_draft, _key_file)
        except FileExistsError:
            pass
        finally:
            _draft.unlink()
    SECRET_KEY = _key_file.read_text().strip()
ALLOWED_HOSTS = _env_or_fail(env.list, "DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

PORTAL_ORG = env.str("PORTAL_ORG", default="demo-org").strip()
if not PORTAL_ORG:
    raise ImproperlyConfigured("PORTAL_ORG must not be empty: it is the {org} in every API path.")
# Where links in emails sent by workers point (no request to build them from).
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "csp",
    "allauth",
    "allauth.account",
    "portal",
    "accounts",
    "billing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "billing.api.middleware.JsonErrorsUnderV1",
    "billing.api.middleware.HeadAsGetUnderV1",
    "portal.middleware.RefuseNulInAdminAddress",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.support",
                "billing.web.context.unpaid_plans",
                "billing.web.context.balance_alerts",
            ],
        },
    },
]

DATABASES = {
    "default": _env_or_fail(
        env.db_url, "DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"
    )
}
# Optional: a read replica for reports and statements (long reads that need not see the last
# second). Money is never moved by reading it; everything else reads and writes "default".
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = _env_or_fail(env.db_url, "DATABASE_REPLICA_URL")
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
REPORTS_DATABASE = "replica" if "replica" in DATABASES else "default"
if not DATABASES["default"].get("ENGINE"):  # django-environ only warns about an unknown scheme
    raise ImproperlyConfigured("Environment variable DATABASE_URL is malformed: unknown scheme.")
# Shared by all workers: allauth's sign-in rate limits count in the cache, so with several
# gunicorn workers it must be Redis (e.g. redis://127.0.0.1:6379/1), not per-process memory.
CACHES = {"default": _env_or_fail(env.cache_url, "CACHE_URL", default="locmemcache://")}
# Keep connections open between requests: a new PostgreSQL connection per request costs more
# than the request itself. Health checks drop ones the server closed meanwhile.
DATABASES["default"]["CONN_MAX_AGE"] = _env_or_fail(env.int, "DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the dev server and in-process tasks share the file. IMMEDIATE:
    # a transaction takes the write lock when it begins, so concurrent requests wait their turn;
    # one that read first and then wrote could not wait and failed with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"  # developers: their money at a glance; admins go on to People
LOGOUT_REDIRECT_URL = "home"

# django-allauth: email is the login; verification mails go to the console by default.
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_SIGNUP_FORM_CLASS = "accounts.forms.SignupForm"
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Developer portal] "

EMAIL_CONFIG = _env_or_fail(env.email_url, "EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
# Django waits for ever by default: a mail server that stops answering would hold the sign-up
# page, or a webhook answer, until the web server kills the worker.
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="portal@localhost")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# The portal is written in English only; its own strings are not marked for translation.
# USE_I18N stays on for one reason: locale/en/LC_MESSAGES/django.po restyles django-allauth's
# Title Case in the portal's sentence case, which needs the translation machinery. A second
# language would start by marking the portal's strings with gettext.
USE_I18N = True
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns at start if it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Served over HTTPS (production): cookies only over HTTPS, plain HTTP redirected, and browsers
# told to stay on HTTPS (HSTS). Behind a proxy that ends TLS, DJANGO_PROXY_SSL_HEADER names the
# header it sets (X-Forwarded-Proto), or every request would look like HTTP and loop.
HTTPS_ONLY = not DEBUG and _env_or_fail(_strict_bool, "DJANGO_SECURE_COOKIES", default=False)
if HTTPS_ONLY:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = _env_or_fail(env.int, "DJANGO_HSTS_SECONDS", default=30 * 24 * 3600)
    # Covers only names under the portal's own host. Preloading is a decision for the owner of
    # the whole domain, sent from its apex, so the portal does not ask for it.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
_proxy_header = env.str("DJANGO_PROXY_SSL_HEADER", default="")
if _proxy_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")


def _broker_url(name: str) -> str:
    """A typo here (redis//host, an unknown scheme) would start fine and then fail every
    enqueue, which a debit only logs: every auto-recharge would silently never run."""
    from kombu.transport import TRANSPORT_ALIASES

    value = env.str(name, default="").strip()
    for url in filter(None, value.split(";")):  # kombu takes a ;-separated failover list
        scheme, separator, _ = url.partition("://")
        if not separator or scheme.split("+")[0] not in TRANSPORT_ALIASES:
            raise ValueError(f"{url!r} is not a broker URL such as redis://host:6379/0")
    return value


# Celery: with no broker the tasks run in-process, so `make run` needs no Redis.
_BROKER_URL = _env_or_fail(_broker_url, "CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not _BROKER_URL
# In-process mode never talks to a broker; "memory://" keeps kombu from looking for one.
CELERY_BROKER_URL = _BROKER_URL or "memory://"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 90
CELERY_TIMEZONE = TIME_ZONE
# A task that was running when its worker died is delivered again (acks_late tasks only).
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Seconds before Redis hands an unacknowledged task (its worker died) to another worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _env_or_fail(env.int, "CELERY_VISIBILITY_TIMEOUT", default=300),
    # Without them a Redis that stops answering (stuck, or packets dropped) holds every enqueue
    # forever, and with it the answer to the debit, the webhook or the page that enqueued. With
    # them the enqueue fails within seconds and the beat's sweep catches up later.
    "socket_timeout": 5,
    "socket_connect_timeout": 5,
}
CELERY_BEAT_SCHEDULE = {
    "auto-recharge-sweep": {"task": "billing.tasks.auto_recharge_sweep", "schedule": 60.0},
    "receipts-sweep": {"task": "billing.tasks.receipts_sweep", "schedule": 300.0},
    # Hourly: on the 1st the month's recurring fees, on other days the plans that started
    # (and the retry of unpaid fees); a run with nothing due reads one partial index.
    "charge-recurring-fees": {
        "task": "billing.tasks.charge_recurring_fees",
        "schedule": crontab(minute=5),
    },
    # Low-balance alerts whose reaction was lost, and their emails not sent.
    "send-balance-alerts": {"task": "billing.tasks.send_balance_alerts", "schedule": 600.0},
    # Hourly: credit lots that reached their expiry, and the warnings of those about to.
    "expire-credits": {"task": "billing.tasks.expire_credits", "schedule": crontab(minute=45)},
    # Hourly: usage owed by wallets that were credited while the broker was down.
    "collect-owed-usage": {
        "task": "billing.tasks.collect_owed_usage",
        "schedule": crontab(minute=35),
    },
}

# Content-Security-Policy (django-csp): scripts, styles and everything else only from the
# portal itself; no inline script or style runs, no other site may frame it. Forms may lead to
# Stripe's payment page (Add credit and Save card redirect there after their POST, which
# form-action governs too).
_stripe_pages = ["https://checkout.stripe.com"]
if env.str("STRIPE_API_BASE", default=""):  # tests and staging: their Stripe's pages
    _stripe_pages.append(env.str("STRIPE_API_BASE").rstrip("/"))
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [CSP_SELF],
        "script-src": [CSP_SELF],
        "style-src": [CSP_SELF],
        "img-src": [CSP_SELF, "data:"],
        "connect-src": [CSP_SELF],
        "form-action": [CSP_SELF, *_stripe_pages],
        "frame-ancestors": [CSP_NONE],
        "base-uri": [CSP_SELF],
        "object-src": [CSP_NONE],
    }
}

# Stripe: without a secret key the portal uses the offline payment simulator.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_MAX_NETWORK_RETRIES = _env_or_fail(env.int, "STRIPE_MAX_NETWORK_RETRIES", default=2)
if STRIPE_SECRET_KEY and not STRIPE_WEBHOOK_SECRET:
    raise ImproperlyConfigured(
        "STRIPE_WEBHOOK_SECRET is required with STRIPE_SECRET_KEY: without it no payment "
        "could ever be confirmed."
    )
if not STRIPE_SECRET_KEY and (STRIPE_PUBLISHABLE_KEY or STRIPE_WEBHOOK_SECRET):
    # Most likely the secret key failed to load: starting would put the offline payment
    # simulator, which credits without any payment, in front of real developers.
    raise ImproperlyConfigured(
        "STRIPE_SECRET_KEY is empty while other STRIPE_* settings are set. Set it, or unset "
        "them all to run the offline payment simulator (no card is ever charged)."
    )
if HTTPS_ONLY and not _BROKER_URL:
    # In-process tasks suit `make run` only: with no worker and no beat, nothing sweeps up a
    # recharge whose trigger failed or whose attempt was cut off, and every charge runs inside
    # the API debit that crossed the threshold, holding the gateway's call while Stripe answers.
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL is required with DJANGO_SECURE_COOKIES=true (production): run a "
        "Celery worker and beat on it (see README)."
    )
# Production must really send mail and share its cache between workers and hosts.
_LOCAL_MAIL = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}
if HTTPS_ONLY and EMAIL_CONFIG.get("EMAIL_BACKEND") in _LOCAL_MAIL:
    # The console backend printed password-reset links (account takeover) into the log, and
    # nobody got their verification or receipt emails.
    raise ImproperlyConfigured(
        "EMAIL_URL must name a real mail server (smtp://, smtp+tls://, smtps://) with "
        "DJANGO_SECURE_COOKIES=true (production): the console, file and memory backends "
        "deliver nothing and print password-reset links into the log."
    )
_LOCAL_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
    "django.core.cache.backends.filebased.FileBasedCache",
}
if CACHES["default"]["BACKEND"] not in _LOCAL_CACHES:
    # A shared cache: sessions are read from it and written through to the database, so every
    # web host sees the same sign-in without a query per request.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
if HTTPS_ONLY and CACHES["default"]["BACKEND"] in _LOCAL_CACHES:
    # Each worker counted failed sign-ins in its own memory: 45 wrong passwords gave 20 real
    # checks across 4 workers instead of 5.
    raise ImproperlyConfigured(
        "CACHE_URL must name a cache all web workers and hosts share (redis://, "
        "pymemcache://) with DJANGO_SECURE_COOKIES=true (production): sign-in attempt "
        "limits and sessions are kept in it."
    )
if HTTPS_ONLY and not STRIPE_SECRET_KEY:
    # A production start without Stripe would let anyone credit themselves on the test page.
    raise ImproperlyConfigured(
        "STRIPE_SECRET_KEY is required with DJANGO_SECURE_COOKIES=true (production): the "
        "offline payment simulator credits wallets without any payment."
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"client_errors": {"()": "portal.log_filters.ClientErrorsWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.request": {"filters": ["client_errors"]},
        "django.db.backends": {"level": "WARNING"},
        "stripe": {"level": "WARNING"},  # it logs every request at INFO
    },
}

# Serve static files straight from the app folders too, so `make run` needs no extra step.
WHITENOISE_USE_FINDERS = True
