"""COT settings: every value comes from the environment (see `.env.example`).

Development defaults are chosen so that `make run` works on a fresh clone; each one that
would be a secret in production is marked DEV-ONLY and must be overridden there.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE

from core.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local `.env` is a convenience for developers; real deployments set the environment.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# The DEV-ONLY defaults, by environment variable: with DEBUG off, every process refuses to
# start while one of them is in use (cot_project/apps.py); `make run` supplies its own.
DEV_ONLY_DEFAULTS = {
    "DJANGO_SECRET_KEY": "dev-only-insecure-secret-key-change-me",
    "PAYMENTS_WEBHOOK_SECRET": "dev-only-payments-secret",
    "LOGISTICS_WEBHOOK_SECRET": "dev-only-logistics-secret",
    "FLOWER_BASIC_AUTH": "flower:flower-dev-only",
    "COT_ADMIN_PASSWORD": "admin",
}
COT_REFUSE_DEV_SECRETS = not DEBUG
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEV_ONLY_DEFAULTS["DJANGO_SECRET_KEY"])
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # Before the admin: its object-tools template adds the "Audit trail" link to the
    # change page of every audited object.
    "audit",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "drf_standardized_errors",
    "django_filters",
    "csp",
    # Admin logins: locked after repeated failures (AXES_* below).
    "axes",
    # The audit trail's triggers (PostgreSQL) and their event tables (audit/models.py).
    "pgtrigger",
    "pghistory",
    "core",
    "inventory",
    "prescriptions",
    "payments",
    "logistics",
    "orders",
    "notifications",
    "privacy",
    "forecasting",
    # Loads the Celery app with Django (cot_project/apps.py).
    "cot_project",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "core.middleware.RequestContextMiddleware",
    "core.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Admin changes run inside an audit context: the trail records who, what and why.
    "audit.middleware.StaffAuditContextMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Refuses a locked-out login with the lock-out page (AXES_* below).
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "cot_project.urls"
WSGI_APPLICATION = "cot_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the writer; IMMEDIATE takes the write lock when a
    # transaction starts, so concurrent workers queue on busy_timeout instead of failing
    # with "database is locked" when a read transaction later tries to write.
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
        ),
    }
    _db["TEST"] = {"NAME": str(BASE_DIR / "test_db.sqlite3")}
elif _db["ENGINE"] in ("django.db.backends.postgresql", "django_prometheus.db.backends.postgresql"):
    # django-prometheus' backend: Django's, counting and timing every statement.
    _db["ENGINE"] = "django_prometheus.db.backends.postgresql"
    # A database that does not answer must not hang a request or /readyz for minutes.
    _db.setdefault("OPTIONS", {})["connect_timeout"] = env.int("DB_CONNECT_TIMEOUT", default=5)
    # A client that vanishes mid-transaction (its host lost, its network cut) leaves its
    # session "idle in transaction", holding its row locks until the server's TCP keepalive
    # notices, hours by default, and every other worker queues behind those locks. No
    # transaction of ours waits on its client for long, so the server ends one that sits
    # idle this many seconds (0: leave it to the server's own setting).
    _idle_seconds = env.int("DB_IDLE_IN_TRANSACTION_TIMEOUT", default=30)
    if _idle_seconds:
        _db["OPTIONS"]["options"] = " ".join(
            filter(
                None,
                [
                    _db["OPTIONS"].get("options", ""),
                    f"-c idle_in_transaction_session_timeout={_idle_seconds * 1000}",
                ],
            )
        )
    # Parameters travel apart from the SQL (psycopg's server-side binding): no Python time
    # goes into quoting values into SQL, and the same statement text repeats, so it can be
    # prepared. Django turns psycopg's prepared statements off (prepare_threshold=None)
    # for the sake of transaction-pooling proxies; with none in between, a statement run
    # DB_PREPARE_THRESHOLD times on a connection is prepared there and the server stops
    # re-parsing and re-planning the pipeline's handful of statements (about a quarter of
    # PostgreSQL's CPU per order). Behind PgBouncer in transaction mode set
    # DB_PREPARE_THRESHOLD=off (and DB_SERVER_SIDE_BINDING=false where it lacks
    # prepared-statement support).
    _db["OPTIONS"]["server_side_binding"] = env.bool("DB_SERVER_SIDE_BINDING", default=True)
    _prepare = env.str("DB_PREPARE_THRESHOLD", default="5")
    _db["OPTIONS"]["prepare_threshold"] = None if _prepare == "off" else int(_prepare)
    # `.iterator()` (the admin's CSV exports) reads through a server-side cursor declared
    # WITH HOLD outside a transaction; behind PgBouncer in transaction mode the next
    # statement may reach another server connection, where the cursor does not exist:
    # DB_SERVER_SIDE_CURSORS=false there (Django then fetches the rows in one go).
    _db["DISABLE_SERVER_SIDE_CURSORS"] = not env.bool("DB_SERVER_SIDE_CURSORS", default=True)
    if env.bool("DB_POOL", default=True):
        # psycopg 3's pool (Django >= 5.1) instead of one connection per request or task;
        # Celery's Django fixup "closes" connections around every task, which with a pool
        # only returns them.
        _db["CONN_MAX_AGE"] = 0
        _db["OPTIONS"]["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=1),
            "max_size": env.int("DB_POOL_MAX_SIZE", default=10),
            "timeout": 10,
        }
    else:
        _db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it counts failed logins (admin form, API basic auth) and refuses a
# locked-out username from this address before a password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Locked after this many failed logins of one username from one address...
AXES_FAILURE_LIMIT = env.int("COT_LOGIN_FAILURE_LIMIT", default=5)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# ...for this long (or until `manage.py axes_reset_username NAME`); a success resets the count.
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env.int("COT_LOGIN_LOCKOUT_MINUTES", default=30))
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/login_locked.html"
# The successful logins are in the sessions already; keep axes' table to the failures.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

# --- HTTPS and browser protections -------------------------------------------------------
# On in production (DEBUG off); `make run` serves plain http on 127.0.0.1 and turns the
# redirect, the secure-only cookies and HSTS off through these variables.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Probes and the Prometheus scrape come over plain http from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients),
# so that Django knows the request came over https.
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [
    # HSTS preload is the domain owner's decision (a list that is hard to leave): opt in
    # with DJANGO_SECURE_HSTS_PRELOAD=true.
    "security.W021",
]
# Content-Security-Policy (django-csp) on every answer: only this server's own scripts,
# no inline script, nothing framed. Styles may be inline: the admin's charts and status
# colours are drawn with style attributes, and Swagger UI injects its styles.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("COT_MEDIA_ROOT", default=str(BASE_DIR / "media"))

# Bodies over 1 MiB are refused with 413 (core.middleware); Django's own limit backs it up.
COT_MAX_BODY_BYTES = 1024 * 1024
# Upload endpoints take a file up to 5 MiB plus the multipart envelope around it.
COT_UPLOAD_BODY_LIMITS = {"/api/v1/prescriptions/": 5 * 1024 * 1024 + 256 * 1024}
DATA_UPLOAD_MAX_MEMORY_SIZE = COT_MAX_BODY_BYTES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "core.authentication.StaffBasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.TextJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "core.schema.CotAutoSchema",
    "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # Each API client's requests per second (core/ratelimits.py); the order placement
    # view adds its own placements-per-second limit.
    "DEFAULT_THROTTLE_CLASSES": ["core.ratelimits.ClientRequestThrottle"],
    "UNAUTHENTICATED_USER": None,
}
DRF_STANDARDIZED_ERRORS = {
    "ENABLE_IN_DEBUG_FOR_UNHANDLED_EXCEPTIONS": True,
    "EXCEPTION_HANDLER_CLASS": "core.errors.CotExceptionHandler",
    # The error statuses the schema declares where they apply (core.schema.CotAutoSchema);
    # 409 is declared per operation with its codes. No 405: an operation's own method
    # never gets it.
    "ALLOWED_ERROR_STATUS_CODES": [
        "400",
        "401",
        "403",
        "404",
        "406",
        "413",
        "415",
        "429",
        "500",
        "503",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "COT – Common Order Taking",
    "DESCRIPTION": "Order API of the online pharmacy. See docs/API.md.",
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's assets are served from this installation, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # A stable name for every enum, whatever else comes to share a field name.
    "ENUM_NAME_OVERRIDES": {
        **{
            f"{name}Enum": f"drf_standardized_errors.openapi_serializers.{name}Enum.choices"
            for name in ("ValidationError", "ClientError", "ServerError")
        },
        **{
            f"ErrorCode{status}Enum": (
                f"drf_standardized_errors.openapi_serializers.ErrorCode{status}Enum.choices"
            )
            for status in (401, 403, 404, 406, 415, 500)
        },
        "MalformedRequestCodeEnum": "core.schema.MalformedRequestCode",
        "PayloadTooLargeCodeEnum": "core.schema.PayloadTooLargeCode",
        "RateLimitedCodeEnum": "core.schema.RateLimitedCode",
        "ServiceUnavailableCodeEnum": "core.schema.ServiceUnavailableCode",
        "BadSignatureCodeEnum": "core.schema.BadSignatureCode",
        "ChannelEnum": "core.enums.Channel",
        "OrderStatusEnum": "orders.enums.OrderStatus",
        "FailureReasonEnum": "orders.enums.FailureReason",
        "OnPartialEnum": "orders.enums.OnPartial",
        "FulfilmentTypeEnum": "orders.enums.Fulfilment",
        "WebhookDeliveryStatusEnum": "notifications.enums.WebhookStatus",
        "LineStatusEnum": "orders.enums.LineStatus",
        "SubstitutionStatusEnum": "orders.enums.SubstitutionStatus",
        "ReturnStatusEnum": "orders.models.ReturnStatus",
        "ReturnReasonEnum": "orders.models.ReturnReason",
        "ReturnLineOutcomeEnum": "orders.schema.RETURN_LINE_OUTCOMES",
        "WriteOffReasonEnum": "inventory.enums.WriteOffReason",
        "ScheduleEnum": "inventory.enums.Schedule",
        "PaymentMethodEnum": "payments.enums.PaymentMethod",
        "ReplenishmentStatusEnum": "forecasting.enums.ReplenishmentStatus",
        "DemandPatternEnum": "forecasting.enums.DemandPattern",
        "PaymentStatusEnum": "payments.enums.PaymentStatus",
        "ShipmentStatusEnum": "logistics.enums.ShipmentStatus",
        "DeliveryFailureReasonEnum": "logistics.enums.DeliveryFailureReason",
        "PrescriptionStatusEnum": "prescriptions.enums.PrescriptionStatus",
        "LineRejectionReasonEnum": "prescriptions.enums.LineRejection",
        "ReviewDecisionEnum": "prescriptions.api.REVIEW_DECISIONS",
        "ReviewLineDecisionEnum": "prescriptions.api.REVIEW_LINE_DECISIONS",
        "RxLineDecisionEnum": "prescriptions.api.RX_LINE_DECISIONS",
        "TrackingUpdateStatusEnum": "logistics.api.TRACKING_UPDATE_STATUSES",
        "TrackingResultEnum": "logistics.api.TRACKING_RESULTS",
        "PaymentNoticeStatusEnum": "payments.api.NOTICE_STATUSES",
        "PaymentNoticeResultEnum": "payments.api.NOTICE_RESULTS",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_standardized_errors.openapi_hooks.postprocess_schema_enums",
    ],
}

# --- Redis, Celery ------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

# Longest a task may run; the broker's visibility timeout must exceed every task's time
# limit and every countdown, or Redis re-delivers a task that is still running.
COT_TASK_TIME_LIMIT = env.int("COT_TASK_TIME_LIMIT", default=120)
COT_MAX_COUNTDOWN_SECONDS = env.int("COT_MAX_COUNTDOWN_SECONDS", default=300)
COT_VISIBILITY_TIMEOUT = env.int("COT_VISIBILITY_TIMEOUT", default=3600)

# Prefix for every key Celery keeps in Redis, so that several stacks (test runs, say) can
# share one Redis database without consuming each other's tasks.
COT_REDIS_KEY_PREFIX = env.str("COT_REDIS_KEY_PREFIX", default="")
# The broker: Redis (default: REDIS_URL) or RabbitMQ (amqp://user:pass@host:5672/vhost),
# cot_project/broker.py. CELERY_BROKER_URL is the older name of the same setting.
CELERY_BROKER_URL = (
    env.str("BROKER_URL", default="") or env.str("CELERY_BROKER_URL", default="") or REDIS_URL
)
# RabbitMQ: deliveries of one message without an ack (its worker died, or lost the broker)
# before the broker dead-letters it instead of delivering it again. Retries are new
# messages and do not count.
COT_BROKER_DELIVERY_LIMIT = env.int("COT_BROKER_DELIVERY_LIMIT", default=10)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False

COT_TASK_EVENTS = env.bool("COT_TASK_EVENTS", default=False)
COT_PIPELINE_MODE = env.str("COT_PIPELINE_MODE", default="celery")

# The API clients' rate-limit counters (core/ratelimits.py, django-ratelimit) live in Redis,
# so every API process on every host counts into the same window. Nothing else uses a
# cache: "default" is Django's own per-process default, named because CACHES must have it.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ratelimit": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": COT_REDIS_KEY_PREFIX,
        "KEY_FUNCTION": "core.ratelimits.cache_key",
        # A Redis that does not answer costs a request at most this long; the limiter then
        # lets the request through (core/ratelimits.py).
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    },
}
RATELIMIT_USE_CACHE = "ratelimit"
RATELIMIT_CACHE_PREFIX = "cot:ratelimit:"
# A count that Redis could not keep lets the request through, as an unreachable Redis does.
RATELIMIT_FAIL_OPEN = True

# --- Business rules -----------------------------------------------------------------------
COT_RESERVATION_TTL_SECONDS = env.int("COT_RESERVATION_TTL_SECONDS", default=900)
COT_STUCK_ORDER_SECONDS = env.int("COT_STUCK_ORDER_SECONDS", default=120)
# An order on hold this long for a pharmacist's review (from its latest `order.on_hold`)
# is cancelled `prescription_review_timeout`, its stock released (orders.expire_holds).
COT_HOLD_TIMEOUT_SECONDS = env.int("COT_HOLD_TIMEOUT_SECONDS", default=86400)
# A substitute offered in review that the client has not answered after this long counts as
# declined, status `expired` (orders.expire_substitutions).
COT_SUBSTITUTION_TIMEOUT_SECONDS = env.int("COT_SUBSTITUTION_TIMEOUT_SECONDS", default=3600)
# Days an in-store pickup order waits at its centre, from ready_for_pickup, before it is
# cancelled `pickup_not_collected`: restocked and refunded (orders.expire_pickups).
COT_PICKUP_HOLD_DAYS = env.int("COT_PICKUP_HOLD_DAYS", default=3)
# Delivery attempts a courier makes before it returns the parcel to us (return to origin).
COT_DELIVERY_ATTEMPTS = env.int("COT_DELIVERY_ATTEMPTS", default=3)
# The customer's tracking link: {simulator} (SIMULATOR_URL), {partner} and {awb} are filled in.
COT_TRACKING_URL_TEMPLATE = env.str(
    "COT_TRACKING_URL_TEMPLATE", default="{simulator}/logistics/{partner}/track/{awb}"
)
COT_SWEEP_INTERVAL_SECONDS = env.int("COT_SWEEP_INTERVAL_SECONDS", default=30)
COT_SHELF_LIFE_FLOOR_DAYS = env.int("COT_SHELF_LIFE_FLOOR_DAYS", default=30)
COT_PRESCRIPTION_VALIDITY_DAYS = env.int("COT_PRESCRIPTION_VALIDITY_DAYS", default=180)
# Schedule H1 drugs (antibiotics, habit-forming) need a fresher prescription than the rest of H.
COT_PRESCRIPTION_VALIDITY_DAYS_H1 = env.int("COT_PRESCRIPTION_VALIDITY_DAYS_H1", default=30)
# A prescription waiting longer than this for a pharmacist is shown "over SLA" in the review
# queue, and a claim older than this may be taken over by another pharmacist.
COT_REVIEW_SLA_SECONDS = env.int("COT_REVIEW_SLA_SECONDS", default=1800)
# Days after delivery a customer may ask to return delivered units.
COT_RETURN_WINDOW_DAYS = env.int("COT_RETURN_WINDOW_DAYS", default=7)
# Days after an order ends (a final status, and nothing since) before its delivery address,
# phone, names and notes are redacted everywhere they are copied (docs/PRIVACY.md).
COT_PII_RETENTION_DAYS = env.int("COT_PII_RETENTION_DAYS", default=365)
COT_PAYMENT_GATEWAYS = env.list("COT_PAYMENT_GATEWAYS", default=["alpha", "beta"])
COT_LOGISTICS_PARTNERS = env.list("COT_LOGISTICS_PARTNERS", default=["swift", "roadie"])
# Attempts a pipeline step gets (Celery retries with exponential backoff) before the task
# itself ends the order and compensates.
COT_STEP_MAX_RETRIES = env.int("COT_STEP_MAX_RETRIES", default=5)
COT_STEP_RETRY_BACKOFF_MAX = env.int("COT_STEP_RETRY_BACKOFF_MAX", default=60)
# How long an order waits for a gateway (every one down, or an unanswered charge) from
# its first payment attempt before it ends payment_failed / payment_unavailable.
COT_PAYMENT_MAX_WAIT_SECONDS = env.int("COT_PAYMENT_MAX_WAIT_SECONDS", default=300)
# Runs of one step of one order (retries, redeliveries, re-drives) before the order is
# flagged `needs_attention` and left alone: a message that kills its worker every time
# must not loop. Keep it above what the retries above can use (~10 runs by default).
COT_STEP_MAX_ATTEMPTS = env.int("COT_STEP_MAX_ATTEMPTS", default=25)
# TEST-ONLY fault injection (core/faults.py), e.g. "after_commit_before_enqueue" or
# "crash_in_step:shipment". Never set in production.
COT_FAULT_INJECTION = env.list("COT_FAULT_INJECTION", default=[])

# Demand forecasting and replenishment (docs/FORECASTING.md).
# Days of order history a forecast learns from, and days it looks ahead.
COT_FORECAST_HISTORY_DAYS = env.int("COT_FORECAST_HISTORY_DAYS", default=365)
COT_FORECAST_HORIZON_DAYS = 28
# Processes statsforecast fits series with (its n_jobs; -1: one per core). Each fit is
# single-threaded Python and numba, so a run spreads over cores only this way.
COT_FORECAST_JOBS = env.int("COT_FORECAST_JOBS", default=1)
# The demand table is rebuilt incrementally: each build re-does this many days before the
# last one built, so units that came back late (returns, returns to origin) still count
# against the day they were sold.
COT_FORECAST_REBUILD_DAYS = env.int("COT_FORECAST_REBUILD_DAYS", default=21)
# The nightly run (beat, maintenance queue), in UTC.
COT_FORECAST_HOUR = env.int("COT_FORECAST_HOUR", default=1)
COT_FORECAST_MINUTE = env.int("COT_FORECAST_MINUTE", default=30)
# Replenishment: the probability that stock covers demand until the next delivery, and
# a centre's lead time and review period when its replenishment settings leave them unset.
COT_REPLENISHMENT_SERVICE_LEVEL = env.float("COT_REPLENISHMENT_SERVICE_LEVEL", default=0.95)
COT_REPLENISHMENT_LEAD_TIME_DAYS = env.int("COT_REPLENISHMENT_LEAD_TIME_DAYS", default=7)
COT_REPLENISHMENT_REVIEW_DAYS = env.int("COT_REPLENISHMENT_REVIEW_DAYS", default=7)

# --- Outside world ------------------------------------------------------------------------
SIMULATOR_URL = env.str("SIMULATOR_URL", default="http://127.0.0.1:8099")
PAYMENTS_BASE_URL = env.str("PAYMENTS_BASE_URL", default="") or f"{SIMULATOR_URL}/gateways"
LOGISTICS_BASE_URL = env.str("LOGISTICS_BASE_URL", default="") or f"{SIMULATOR_URL}/logistics"
NOTIFY_BASE_URL = env.str("NOTIFY_BASE_URL", default="") or f"{SIMULATOR_URL}/notify"
COT_HTTP_CONNECT_TIMEOUT = env.float("COT_HTTP_CONNECT_TIMEOUT", default=2.0)
COT_HTTP_READ_TIMEOUT = env.float("COT_HTTP_READ_TIMEOUT", default=5.0)
# Circuit breakers per target, shared through Redis (core.breaker): open after this many
# consecutive failures, let one probe through after the reset time.
COT_BREAKER_FAILURE_THRESHOLD = env.int("COT_BREAKER_FAILURE_THRESHOLD", default=5)
COT_BREAKER_RESET_SECONDS = env.float("COT_BREAKER_RESET_SECONDS", default=30)
# Outbound webhooks to clients (docs/NOTIFICATIONS.md): how long a delivery is retried
# from its first attempt before it is failed, the exponential backoff between attempts,
# the POST's read timeout, and how old an event must be before the outbox sweeper stops
# looking for it (longer than any transaction lasts).
COT_WEBHOOK_RETRY_WINDOW_SECONDS = env.int("COT_WEBHOOK_RETRY_WINDOW_SECONDS", default=86400)
COT_WEBHOOK_RETRY_BASE_SECONDS = env.float("COT_WEBHOOK_RETRY_BASE_SECONDS", default=5)
COT_WEBHOOK_RETRY_MAX_SECONDS = env.float("COT_WEBHOOK_RETRY_MAX_SECONDS", default=3600)
COT_WEBHOOK_TIMEOUT_SECONDS = env.float("COT_WEBHOOK_TIMEOUT_SECONDS", default=5)
COT_WEBHOOK_OUTBOX_LAG_SECONDS = env.int("COT_WEBHOOK_OUTBOX_LAG_SECONDS", default=600)
# Client webhook URLs must be https to a public address; on, http and loopback or private
# addresses are allowed too (a receiver on the same machine or network: `make run`, tests).
COT_ALLOW_PRIVATE_WEBHOOKS = env.bool("COT_ALLOW_PRIVATE_WEBHOOKS", default=False)
# A customer-facing event without a message row this long after it happened had its task
# lost (a crash between commit and enqueue, a Redis that restarted empty): the sweeper
# enqueues it again (notifications.notification_sweep, every COT_SWEEP_INTERVAL_SECONDS).
COT_NOTIFICATION_SWEEP_GRACE_SECONDS = env.int("COT_NOTIFICATION_SWEEP_GRACE_SECONDS", default=60)
# DEV-ONLY defaults: production must set the partners' real webhook secrets.
PAYMENTS_WEBHOOK_SECRET = env.str(
    "PAYMENTS_WEBHOOK_SECRET", default=DEV_ONLY_DEFAULTS["PAYMENTS_WEBHOOK_SECRET"]
)
LOGISTICS_WEBHOOK_SECRET = env.str(
    "LOGISTICS_WEBHOOK_SECRET", default=DEV_ONLY_DEFAULTS["LOGISTICS_WEBHOOK_SECRET"]
)
# Read by Flower (the Procfile) and by `seed_demo --print-credentials`; here only so that
# startup can refuse their DEV-ONLY values.
FLOWER_BASIC_AUTH = env.str("FLOWER_BASIC_AUTH", default="")
COT_ADMIN_PASSWORD = env.str("COT_ADMIN_PASSWORD", default="")

# --- Operations ---------------------------------------------------------------------------
# `user:password` that /metrics asks for (HTTP basic auth); empty: /metrics is open (keep it
# on a private network then).
METRICS_BASIC_AUTH = env.str("METRICS_BASIC_AUTH", default="")

# --- Logging ------------------------------------------------------------------------------
# One JSON object per line in production; readable lines when DEBUG is on (or
# COT_LOG_FORMAT=console, which `make run` picks). Fields: docs/OPERATIONS.md.
COT_LOG_FORMAT = env.str("COT_LOG_FORMAT", default="console" if DEBUG else "json")
LOGGING = logging_config(log_format=COT_LOG_FORMAT, level=env.str("COT_LOG_LEVEL", default="INFO"))
