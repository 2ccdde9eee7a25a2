"""`Authorization: Api-Key <key>` for channel clients (djangorestframework-api-key)."""

from __future__ import annotations

import functools
import re

from django.db import connection, models
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.models import ApiClient, ClientAPIKey

KEYWORD = "Api-Key"
# Keys are "<prefix>.<secret>" of ASCII letters and digits; anything else is refused before
# it reaches the database (a NUL byte, say, would make PostgreSQL raise).
_KEY_SHAPE = re.compile(r"^[A-Za-z0-9]{1,16}\.[A-Za-z0-9]{1,128}$")


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates the request as an `ApiClient`: `request.user` is the client,
    `request.auth` the id of its key."""

    def authenticate(self, request: Request) -> tuple[ApiClient, str] | None:
        scheme, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != KEYWORD.lower():
            return None
        key = key.strip()
        if not _KEY_SHAPE.match(key):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        found = _usable_key(key.partition(".")[0])
        # The library's check: the key's hash (sha512, unsalted: keys are random) against
        # the stored one, in constant time.
        if found is None or not ClientAPIKey.objects.key_generator.verify(key, found[1]):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return found[2], found[0]

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


def _usable_key(prefix: str) -> tuple[str, str, ApiClient] | None:
    """(key id, hashed key, its client) for the key with this prefix, if it is not revoked
    or expired and its client is active: what `get_usable_keys()`, `has_expired` and
    `client.active` decide, in one statement.

    Plain SQL because every request runs it: the ORM spent ~0.8 ms of CPU building this
    query each time, several times what running it costs."""
    sql, client_fields = _usable_key_sql(connection.vendor)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix, False, now, True])
        row = cursor.fetchone()
    if row is None:
        return None
    client = ApiClient.from_db(connection.alias, client_fields, row[2:])
    return row[0], row[1], client


@functools.cache
def _usable_key_sql(vendor: str) -> tuple[str, list[str]]:
    """The statement, and the client's fields it loads. Date-times are left deferred
    (loaded if ever read): plain SQL skips the backend's converters, and SQLite would
    hand them back naive."""
    quote = connection.ops.quote_name
    fields = [f for f in ApiClient._meta.concrete_fields if not isinstance(f, models.DateTimeField)]
    keys, clients = ClientAPIKey._meta.db_table, ApiClient._meta.db_table
    # Names from the models, quoted; the values are parameters.
    sql = (
        f"SELECT k.{quote('id')}, k.{quote('hashed_key')}, "  # noqa: S608
        + ", ".join(f"c.{quote(f.column)}" for f in fields)
        + f" FROM {quote(keys)} k INNER JOIN {quote(clients)} c ON c.{quote('id')} = "
        f"k.{quote('client_id')} WHERE k.{quote('prefix')} = %s AND k.{quote('revoked')} = %s"
        f" AND (k.{quote('expiry_date')} IS NULL OR k.{quote('expiry_date')} >= %s)"
        f" AND c.{quote('active')} = %s"
    )
    return sql, [f.attname for f in fields]
