"""The small test override: a Redis database of its own and fast password hashing."""

import os

from cot_project.settings import *  # noqa: F403
from cot_project.settings import env

# Tests flush this Redis database; it must not be the one `make run` uses.
REDIS_URL = env.str("TEST_REDIS_URL", default="redis://127.0.0.1:6379/15")
# Keys of this test process's own (Celery, breakers), so runs sharing a Redis database
# never see each other's state; the live stacks of the e2e tests set their own.
COT_REDIS_KEY_PREFIX = env.str("COT_REDIS_KEY_PREFIX", default=f"test-{os.getpid()}:")
# The broker: the test Redis unless a test stack names another (the end-to-end tests'
# RabbitMQ vhosts, tests/brokers.py; the cluster tests' own broker); this process itself
# runs tasks eagerly.
CELERY_BROKER_URL = env.str("TEST_BROKER_URL", default="") or REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
# Rate-limit counters in the test Redis too, under this run's key prefix.
CACHES = {
    **CACHES,  # noqa: F405
    "ratelimit": {
        **CACHES["ratelimit"],  # noqa: F405
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": COT_REDIS_KEY_PREFIX,
    },
}
# The test processes share the simulator's DEV-ONLY webhook secrets (the simulator is a
# separate process with the same defaults): allowed here, and only here, with DEBUG off.
COT_REFUSE_DEV_SECRETS = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Short waits, so the end-to-end tests see retries and re-drives within seconds.
COT_STEP_RETRY_BACKOFF_MAX = env.int("COT_STEP_RETRY_BACKOFF_MAX", default=2)
COT_HTTP_READ_TIMEOUT = env.float("COT_HTTP_READ_TIMEOUT", default=3.0)
COT_WEBHOOK_RETRY_BASE_SECONDS = env.float("COT_WEBHOOK_RETRY_BASE_SECONDS", default=0.2)
COT_WEBHOOK_RETRY_MAX_SECONDS = env.float("COT_WEBHOOK_RETRY_MAX_SECONDS", default=1)
# The tests' webhook receivers listen on 127.0.0.1 over plain http.
COT_ALLOW_PRIVATE_WEBHOOKS = env.bool("COT_ALLOW_PRIVATE_WEBHOOKS", default=True)
# /metrics behind basic auth, as production should run it: the tests scrape with these.
METRICS_BASIC_AUTH = env.str("METRICS_BASIC_AUTH", default="prometheus:test-metrics-password")
# The test client and the live test servers speak plain http on 127.0.0.1.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
