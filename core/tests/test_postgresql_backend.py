"""core.postgresql: django-prometheus' database metrics, from a cursor class built once."""

import pytest
from django.db import DatabaseError, connection
from prometheus_client import REGISTRY

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL backend"),
]
LABELS = {"alias": "default", "vendor": "postgresql"}


def sample(name, **extra):
    return REGISTRY.get_sample_value(name, {**LABELS, **extra}) or 0


def test_statements_are_counted_and_timed():
    executed, timed = (
        sample("django_db_execute_total"),
        sample("django_db_query_duration_seconds_count"),
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.execute("SELECT %s", [2])
    assert sample("django_db_execute_total") == executed + 2
    assert sample("django_db_query_duration_seconds_count") == timed + 2


def test_bulk_statements_are_counted_once_per_row():
    executed, many = sample("django_db_execute_total"), sample("django_db_execute_many_total")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE bulk_probe (n int)")
        cursor.executemany("INSERT INTO bulk_probe VALUES (%s)", [[1], [2], [3]])
    assert sample("django_db_execute_many_total") == many + 3
    assert sample("django_db_execute_total") == executed + 1 + 3


def test_failed_statements_are_counted_by_error_type():
    # Counted at psycopg's cursor, by psycopg's exception class, as django-prometheus does.
    before = sample("django_db_errors_total", type="UndefinedTable")
    with pytest.raises(DatabaseError), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    assert sample("django_db_errors_total", type="UndefinedTable") == before + 1


@pytest.mark.django_db(transaction=True)
def test_every_connection_gets_the_same_cursor_class():
    # The point of the backend: django-prometheus made a new class on every connect().
    connection.ensure_connection()
    first = connection.connection.cursor_factory
    connection.close()
    connection.ensure_connection()
    assert connection.connection.cursor_factory is first
    assert first.__name__.startswith("Instrumented")
