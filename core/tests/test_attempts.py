"""The outbound-attempt protocol, on models of its own (payments and logistics test it with
their gateways and couriers)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from django.apps.registry import Apps
from django.db import connection, models
from django.utils import timezone

from core.attempts import (
    ABANDONED,
    ERROR,
    STARTED,
    UNAVAILABLE,
    AttemptInProgress,
    Attempts,
    attempt_settle,
)
from core.http import ExternalRejected, ExternalTimeout, ExternalUnavailable
from core.models import OutboundAttempt

# A registry of their own: these models are not the core app's, and no migration sees them.
test_apps = Apps()


class Parcel(models.Model):
    status = models.CharField(max_length=12, default="open")
    carrier = models.CharField(max_length=12, blank=True)

    class Meta:
        apps = test_apps
        app_label = "attempts_tests"


class Call(OutboundAttempt):
    parcel = models.ForeignKey(Parcel, on_delete=models.PROTECT, related_name="calls")
    kind = models.CharField(max_length=10, default="send")
    peer = models.CharField(max_length=12)

    class Meta(OutboundAttempt.Meta):
        apps = test_apps
        app_label = "attempts_tests"


class CallInProgress(AttemptInProgress):
    pass


REFUSED = "refused"
CALLS: Attempts[Parcel, Call] = Attempts(
    Call,
    parent="parcel",
    peer="peer",
    scope={"kind": "send"},
    ready={"status": "open"},
    nowhere=frozenset({UNAVAILABLE, ABANDONED, REFUSED}),
    refused=REFUSED,
    target=lambda peer: f"peers/{peer}",
    in_progress=CallInProgress,
)
PEERS = ["a", "b"]


@pytest.fixture(scope="module", autouse=True)
def tables(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    # Outside any test's transaction: SQLite's schema editor refuses to run inside one.
    with django_db_blocker.unblock():
        with connection.schema_editor() as editor:
            editor.create_model(Parcel)
            editor.create_model(Call)
        yield
        with connection.schema_editor() as editor:
            editor.delete_model(Call)
            editor.delete_model(Parcel)


pytestmark = pytest.mark.django_db


class Peer:
    """A fake peer: answers, or raises, and counts what reached it."""

    def __init__(self, *, answer: str = "ok", error: Exception | None = None) -> None:
        self.answer, self.error, self.calls = answer, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.answer


def record_into(parcel: Parcel, attempt: Call) -> Any:
    def record(answer: str) -> tuple[str, dict[str, Any]]:
        parcel.carrier = attempt.peer
        parcel.save(update_fields=["carrier"])
        return "done", {"answer": answer}

    return record


def first(parcel: Parcel, tried: set[str] | None = None) -> tuple[Call | None, int | None]:
    return CALLS.current(parcel, peers=PEERS, tried=tried or set(), key=f"parcel:{parcel.pk}")


def fields(attempt: Call) -> tuple[str, str, int, bool]:
    attempt.refresh_from_db()
    return attempt.peer, attempt.status, attempt.sends, attempt.lease_until is not None


def test_a_new_attempt_is_written_claimed_and_its_last_is_reused_until_it_went_nowhere() -> None:
    parcel = Parcel.objects.create()
    attempt, sends = first(parcel)
    assert attempt is not None and sends == 1
    assert (attempt.idempotency_key, attempt.kind) == (f"parcel:{parcel.pk}:1", "send")
    assert fields(attempt) == ("a", STARTED, 1, True)
    assert first(parcel) == (attempt, None)  # same key: the peer may have acted on it


def test_an_answer_is_recorded_with_the_parent_and_the_lease_ends() -> None:
    parcel = Parcel.objects.create()
    attempt, sends = first(parcel)
    answer = Peer(answer="yes")
    assert CALLS.send(parcel, attempt, answer, record_into(parcel, attempt), sends=sends)
    assert fields(attempt) == ("a", "done", 1, False)
    assert attempt.response == {"answer": "yes"}
    assert Parcel.objects.get(pk=parcel.pk).carrier == "a"


def test_the_parent_and_the_attempt_are_recorded_both_or_neither() -> None:
    parcel = Parcel.objects.create()
    attempt, sends = first(parcel)

    def broken(answer: str) -> tuple[str, dict[str, Any]]:
        Parcel.objects.filter(pk=parcel.pk).update(carrier="a")
        raise RuntimeError("died while recording")

    with pytest.raises(RuntimeError):
        CALLS.send(parcel, attempt, Peer(), broken, sends=sends)
    assert Parcel.objects.get(pk=parcel.pk).carrier == ""
    assert fields(attempt)[1] == STARTED


def test_a_first_send_that_never_reached_its_peer_moves_on_to_the_next() -> None:
    parcel = Parcel.objects.create()
    attempt, sends = first(parcel)
    down = Peer(error=ExternalUnavailable("peers/a", "refused"))
    assert not CALLS.send(parcel, attempt, down, record_into(parcel, attempt), sends=sends)
    assert fields(attempt) == ("a", UNAVAILABLE, 1, False)
    following, sends = first(parcel, tried={"a"})
    assert following is not None and sends == 1
    assert (following.peer, following.idempotency_key) == ("b", f"parcel:{parcel.pk}:2")
    assert first(parcel, tried={"a", "b"}) == (following, None)


def test_an_unknown_outcome_keeps_the_peer_and_the_key_even_when_the_peer_then_looks_down() -> None:
    parcel = Parcel.objects.create()
    attempt, sends = first(parcel)
    with pytest.raises(ExternalTimeout):
        CALLS.send(
            parcel,
            attempt,
            Peer(error=ExternalTimeout("peers/a", "no answer")),
            record_into(parcel, attempt),
            sends=sends,
        )
    assert fields(attempt) == ("a", ERROR, 1, False)
    assert first(parcel, tried={"a"}) == (attempt, None)
    # Sent again (claimed: the second send), the peer is unreachable: still unknown.
    down = Peer(error=ExternalUnavailable("peers/a", "refused"))
    with pytest.raises(ExternalUnavailable):
        CALLS.send(parcel, attempt, down, record_into(parcel, attempt))
    assert down.calls == 1
    assert fields(attempt) == ("a", ERROR, 2, False)
    assert first(parcel, tried={"a"}) == (attempt, None)


def test_after_a_final_no_a_parent_ready_again_gets_a_new_attempt_and_key() -> None:
    declining = replace(CALLS, final=frozenset({"declined"}))
    parcel = Parcel.objects.create()
    attempt, sends = declining.current(parcel, peers=PEERS, tried=set(), key="p")

    def declined(answer: str) -> tuple[str, dict[str, Any]]:
        return "declined", {"answer": answer}

    assert declining.send(parcel, attempt, Peer(answer="no"), declined, sends=sends)
    # Asked again (the customer pays another way): a new key at the same first peer,
    # never the declined key with new content. Without `final` the old key comes back.
    following, sends = declining.current(parcel, peers=PEERS, tried=set(), key="p")
    assert following is not None and sends == 1
    assert (following.peer, following.idempotency_key) == ("a", "p:2")
    assert first(parcel) == (following, None)
    assert declining.current(parcel, peers=PEERS, tried=set(), key="p") == (following, None)


def test_an_attempt_leased_by_another_process_is_not_sent_until_its_lease_ends() -> None:
    parcel = Parcel.objects.create()
    attempt, _ = first(parcel)  # another process wrote it and is sending it now
    peer = Peer()
    with pytest.raises(CallInProgress, match="peers/a"):
        CALLS.send(parcel, attempt, peer, record_into(parcel, attempt))
    assert peer.calls == 0
    Call.objects.filter(pk=attempt.pk).update(
        lease_until=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert CALLS.send(parcel, attempt, peer, record_into(parcel, attempt))
    assert peer.calls == 1
    assert fields(attempt) == ("a", "done", 2, False)


def test_an_attempt_settled_elsewhere_is_not_sent_again_and_its_parent_is_read() -> None:
    parcel = Parcel.objects.create()
    attempt, _ = first(parcel)
    Parcel.objects.filter(pk=parcel.pk).update(carrier="a")
    attempt_settle(attempt, status="done", response={})
    peer = Peer()
    assert CALLS.send(parcel, attempt, peer, record_into(parcel, attempt))
    assert (peer.calls, parcel.carrier) == (0, "a")


def test_a_parent_that_no_longer_wants_the_call_never_gets_it() -> None:
    parcel = Parcel.objects.create()
    attempt, _ = first(parcel)
    Call.objects.filter(pk=attempt.pk).update(lease_until=None)
    Parcel.objects.filter(pk=parcel.pk).update(status="closed")
    assert CALLS.claim(parcel, attempt) is None
    peer = Peer()
    with pytest.raises(CallInProgress):
        CALLS.send(parcel, attempt, peer, record_into(parcel, attempt))
    assert peer.calls == 0
    assert fields(attempt)[2] == 1


def test_a_refusal_goes_nowhere_and_that_peer_is_not_asked_again() -> None:
    parcel = Parcel.objects.create()
    attempt, sends = first(parcel)
    refusing = Peer(error=ExternalRejected("peers/a", 422, {"error": "no"}))
    assert not CALLS.send(parcel, attempt, refusing, record_into(parcel, attempt), sends=sends)
    assert fields(attempt) == ("a", REFUSED, 1, False)
    assert attempt.response == {"status_code": 422, "body": {"error": "no"}}
    following, _ = first(parcel)  # a later call: a is not tried again
    assert following is not None and following.peer == "b"
    Call.objects.filter(pk=following.pk).update(status=REFUSED)
    assert first(parcel) == (None, None)


def test_where_a_refusal_means_nothing_it_leaves_the_outcome_unknown() -> None:
    plain = replace(CALLS, refused=None)
    parcel = Parcel.objects.create()
    attempt = plain.write(parcel, peer="a", key="k")
    with pytest.raises(ExternalRejected):
        plain.send(
            parcel,
            attempt,
            Peer(error=ExternalRejected("a", 400, "")),
            record_into(parcel, attempt),
            sends=1,
        )
    assert fields(attempt)[1] == ERROR


def test_without_failover_an_unreachable_peer_is_only_asked_again_later() -> None:
    single = replace(CALLS, failover=False)
    parcel = Parcel.objects.create()
    attempt = Call.objects.create(parcel=parcel, peer="a", idempotency_key="k")  # unclaimed
    down = Peer(error=ExternalUnavailable("a", "refused"))
    with pytest.raises(ExternalUnavailable):
        single.send(parcel, attempt, down, record_into(parcel, attempt))
    assert fields(attempt) == ("a", STARTED, 1, False)
    assert single.send(parcel, attempt, Peer(), record_into(parcel, attempt))
    assert fields(attempt) == ("a", "done", 2, False)


def test_ending_abandons_what_was_never_sent_and_names_what_is_in_flight() -> None:
    parcel = Parcel.objects.create()
    unsent = Call.objects.create(parcel=parcel, peer="a", idempotency_key="k:1")
    other_kind = Call.objects.create(parcel=parcel, kind="other", peer="a", idempotency_key="o")
    assert CALLS.abandon(parcel) is None
    assert fields(unsent)[1] == ABANDONED
    assert fields(other_kind)[1] == STARTED
    assert CALLS.claim(parcel, unsent) is None  # its sender can no longer send it

    in_flight, _ = first(parcel)
    assert in_flight is not None and in_flight.idempotency_key == f"parcel:{parcel.pk}:2"
    assert CALLS.abandon(parcel) == in_flight
    assert fields(in_flight)[1] == STARTED
