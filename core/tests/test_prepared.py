"""Prepared querysets give what the ORM gives, with values bound per call."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import ApiClient, ClientAPIKey
from core.prepared import (
    Bind,
    Prepared,
    PreparedInsert,
    PreparedInsertWithChildren,
    PreparedUpdates,
)
from core.tests.factories import ApiClientFactory, api_key_for

pytestmark = pytest.mark.django_db

_pk = ApiClient._meta.pk
_BY_PK = Prepared(lambda: ApiClient.objects.filter(pk=Bind("pk", _pk)))
_KEYS_WITH_CLIENT = Prepared(
    lambda: (
        ClientAPIKey.objects.select_related("client")
        .filter(client_id=Bind("client_id", _pk))
        .order_by("created")
    )
)
_NAMES = Prepared(
    lambda: (
        ApiClient.objects.filter(channel=Bind("channel", ApiClient._meta.get_field("channel")))
        .order_by("name")
        .values_list("name", flat=True)
    )
)
_PAIRS = Prepared(
    lambda: ApiClient.objects.filter(pk=Bind("pk", _pk)).values_list("name", "active")
)
_DEACTIVATE = Prepared(
    lambda: ApiClient.objects.filter(pk=Bind("pk", _pk), active=True),
    update=lambda: {
        "active": False,
        "updated_at": Bind("now", ApiClient._meta.get_field("updated_at")),
    },
)


def _fields(obj: object) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_an_instance_equals_the_orms() -> None:
    client = ApiClientFactory(webhook_url="https://example.test/hook")
    prepared = _BY_PK.get(pk=client.pk)
    assert _fields(prepared) == _fields(ApiClient.objects.get(pk=client.pk))
    assert not prepared._state.adding and prepared._state.db == "default"
    prepared.name = "renamed"
    prepared.save(update_fields=["name"])  # a loaded instance, not a new row
    assert ApiClient.objects.get(pk=client.pk).name == "renamed"


def test_values_are_bound_per_call_and_missing_rows_raise() -> None:
    first, second = ApiClientFactory(), ApiClientFactory()
    assert _BY_PK.get(pk=first.pk).name == first.name
    assert _BY_PK.get(pk=second.pk).name == second.name
    assert _BY_PK.first(pk=second.pk + 1000) is None
    with pytest.raises(ApiClient.DoesNotExist):
        _BY_PK.get(pk=second.pk + 1000)
    with pytest.raises(TypeError):
        _BY_PK.get(id=first.pk)


def test_select_related_rows_come_with_their_relation_in_one_statement() -> None:
    client = ApiClientFactory()
    api_key_for(client)
    api_key_for(client)
    with CaptureQueriesContext(connection) as queries:
        keys = _KEYS_WITH_CLIENT.all(client_id=client.pk)
        names = {key.client.name for key in keys}
    assert len(queries) == 1
    assert names == {client.name}
    orm = list(ClientAPIKey.objects.filter(client=client).order_by("created"))
    assert [_fields(k) for k in keys] == [_fields(k) for k in orm]


def test_values_list_flat_and_tuples() -> None:
    ApiClientFactory(name="b", channel="web")
    ApiClientFactory(name="a", channel="web")
    app = ApiClientFactory(name="c", channel="app")
    assert _NAMES.all(channel="web") == ["a", "b"]
    assert _PAIRS.all(pk=app.pk) == [("c", True)]


def test_an_update_binds_its_values_and_counts_rows() -> None:
    client = ApiClientFactory()
    later = timezone.now() + timezone.timedelta(days=1)
    assert _DEACTIVATE.run(pk=client.pk, now=later) == 1
    assert _DEACTIVATE.run(pk=client.pk, now=later) == 0  # its filter no longer matches
    client.refresh_from_db()
    assert client.active is False and client.updated_at == later


def test_an_update_through_a_join_is_refused() -> None:
    joined = Prepared(
        lambda: ClientAPIKey.objects.filter(client__name=Bind("name", _pk)),
        update=lambda: {"revoked": True},
    )
    with pytest.raises(ValueError, match="own table"):
        joined.run(name="x")


@pytest.mark.django_db(transaction=True)
def test_a_statement_compiled_in_one_thread_runs_on_another_threads_connection() -> None:
    # Celery's thread pool and the concurrency tests run one compiled statement from
    # several threads; each must use its own connection.
    client = ApiClientFactory()
    assert _BY_PK.get(pk=client.pk).name == client.name  # compiled here
    found: list[object] = []

    def other_thread() -> None:
        try:
            found.append(_BY_PK.get(pk=client.pk).name)
        except Exception as exc:
            found.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert found == [client.name]


_RENAME = Prepared(
    lambda: ApiClient.objects.filter(pk=Bind("pk", _pk)),
    update=lambda: {"name": Bind("name", ApiClient._meta.get_field("name"))},
)
_DEACTIVATE_AND_RENAME = PreparedUpdates(_DEACTIVATE, _RENAME)


def test_updates_run_together_in_one_statement_on_postgresql() -> None:
    first, second = ApiClientFactory(active=True), ApiClientFactory(name="before")
    with CaptureQueriesContext(connection) as queries:
        counts = _DEACTIVATE_AND_RENAME.run(
            {"pk": first.pk, "now": timezone.now()}, {"pk": second.pk, "name": "after"}
        )
    assert counts == [1, 1]
    first.refresh_from_db()
    second.refresh_from_db()
    assert not first.active and second.name == "after"
    if connection.vendor == "postgresql":
        assert len(queries) == 1
        assert queries[0]["sql"].startswith("WITH u0 AS (UPDATE")


def test_an_update_that_changes_nothing_stops_the_ones_after_it() -> None:
    inactive, other = ApiClientFactory(active=False), ApiClientFactory(name="kept")
    counts = _DEACTIVATE_AND_RENAME.run(
        {"pk": inactive.pk, "now": timezone.now()}, {"pk": other.pk, "name": "changed"}
    )
    assert counts == [0, 0]
    other.refresh_from_db()
    assert other.name == "kept"


def test_prepared_updates_refuse_what_they_cannot_run_together() -> None:
    with pytest.raises(ValueError):
        PreparedUpdates(_DEACTIVATE)
    with pytest.raises(ValueError):
        PreparedUpdates(_DEACTIVATE, _BY_PK)  # a query, not an update
    with pytest.raises(TypeError):
        _DEACTIVATE_AND_RENAME.run({"pk": 1, "now": timezone.now()})
    with pytest.raises(TypeError):  # the values of each update are checked as for one
        _DEACTIVATE_AND_RENAME.run({"pk": 1}, {"pk": 2, "name": "x"})


_CLIENT_INSERT = PreparedInsert(ApiClient)


def test_a_prepared_create_writes_the_row_the_orm_would() -> None:
    with CaptureQueriesContext(connection) as queries:
        created = _CLIENT_INSERT.create(name="prepared", channel="web")
    assert len(queries) == 1 and queries[0]["sql"].startswith("INSERT INTO")
    assert created.pk is not None  # the auto-increment key, from RETURNING
    assert not created._state.adding and created._state.db == "default"
    assert created.created_at is not None and created.updated_at is not None  # auto_now(_add)
    assert len(created.webhook_secret) == 64  # a callable default, as Model() applies it
    orm = ApiClient.objects.create(name="orm", channel="web")
    stored = ApiClient.objects.get(pk=created.pk)
    assert _fields(stored) == _fields(created)
    differ = {"id", "name", "webhook_secret", "created_at", "updated_at"}
    assert {k: v for k, v in _fields(stored).items() if k not in differ} == {
        k: v for k, v in _fields(orm).items() if k not in differ
    }
    created.name = "renamed"
    created.save(update_fields=["name"])  # a saved instance: an UPDATE, not a second row
    assert ApiClient.objects.get(pk=created.pk).name == "renamed"


def test_a_prepared_insert_writes_several_rows_in_one_statement_ids_in_order() -> None:
    clients = [ApiClient(name=f"many-{n}", channel="app") for n in range(3)]
    with CaptureQueriesContext(connection) as queries:
        assert _CLIENT_INSERT.insert(clients) is clients
    assert len(queries) == 1
    assert [ApiClient.objects.get(pk=c.pk).name for c in clients] == [c.name for c in clients]
    with CaptureQueriesContext(connection) as queries:
        assert _CLIENT_INSERT.insert([]) == []
    assert not queries


def test_a_prepared_insert_that_breaks_a_constraint_raises_and_writes_nothing() -> None:
    ApiClientFactory(name="taken")
    with transaction.atomic():  # a caller's transaction, which goes on after the error
        with pytest.raises(IntegrityError), transaction.atomic():
            _CLIENT_INSERT.insert(
                [ApiClient(name="fresh", channel="web"), ApiClient(name="taken", channel="web")]
            )
        assert not ApiClient.objects.filter(name="fresh").exists()


_KEY_INSERT = PreparedInsert(ClientAPIKey)
_CLIENT_WITH_KEYS = PreparedInsertWithChildren(_CLIENT_INSERT, (_KEY_INSERT, "client"))


def _key(n: int) -> ClientAPIKey:
    return ClientAPIKey(id=f"key{n}.hash", prefix=f"key{n}", hashed_key="hash", name=f"k{n}")


def test_a_row_and_its_children_are_written_together_in_one_statement_on_postgresql() -> None:
    client, keys = ApiClient(name="parent", channel="partner"), [_key(1), _key(2)]
    with CaptureQueriesContext(connection) as queries:
        _CLIENT_WITH_KEYS.insert(client, keys)
    if connection.vendor == "postgresql":
        # Around it a savepoint, as inside any caller's transaction (a test is one).
        sent = [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
        assert len(sent) == 1 and sent[0].startswith("WITH parent AS (INSERT")
    assert client.pk is not None and not client._state.adding
    assert all(key.client_id == client.pk and not key._state.adding for key in keys)
    stored = ClientAPIKey.objects.filter(client=client).order_by("id")
    assert [(k.id, k.prefix, k.name) for k in stored] == [(k.id, k.prefix, k.name) for k in keys]
    assert _fields(ApiClient.objects.get(pk=client.pk)) == _fields(client)
    alone = ApiClient(name="no keys", channel="web")
    _CLIENT_WITH_KEYS.insert(alone, [])
    assert ApiClient.objects.filter(pk=alone.pk).exists()


def test_a_child_that_breaks_a_constraint_leaves_no_row_of_the_parent() -> None:
    _CLIENT_WITH_KEYS.insert(ApiClient(name="first", channel="web"), [_key(1)])
    with transaction.atomic():  # a caller's transaction: the insert guards it itself
        with pytest.raises(IntegrityError):
            _CLIENT_WITH_KEYS.insert(ApiClient(name="second", channel="web"), [_key(2), _key(1)])
        # Still usable, and nothing of the failed insert is in it.
        assert not ApiClient.objects.filter(name="second").exists()
        assert not ClientAPIKey.objects.filter(id="key2.hash").exists()


def test_children_must_point_to_a_parent_with_an_auto_increment_key() -> None:
    with pytest.raises(ValueError):
        PreparedInsertWithChildren(_KEY_INSERT, (_CLIENT_INSERT, "name"))  # no such key
    with pytest.raises(ValueError):
        PreparedInsertWithChildren(_CLIENT_INSERT, (_CLIENT_INSERT, "name"))  # not a key
    with pytest.raises(TypeError):
        _CLIENT_WITH_KEYS.insert(ApiClient(name="x", channel="web"))  # its keys not given
