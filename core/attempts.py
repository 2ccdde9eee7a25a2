"""Outside calls that must take effect at most once: the one protocol every attempt follows.

An attempt is one idempotency key sent to one peer (a payment gateway, a courier) for a
parent row (a payment, a shipment). A peer never acts twice on one key, so a retry is safe
as long as it is the same key at the same peer; these rules make sure it is:

1. Written first. The attempt and its key are committed before the call. A new attempt is
   written under the parent's row lock, already claimed by the process that writes it.
2. Claimed. Any other send first claims the attempt under the parent's row lock, only while
   the parent still wants the call (`ready`) and no other process holds its lease; the
   claim counts the send. So two processes never send one attempt at once, and a lease
   outlives the call it covers, so the attempt of a sender that died is sent again once
   its lease ends.
3. Sent, and its outcome recorded together with what it did to the parent, both or
   neither. An attempt *went nowhere* only when the peer surely did not act on it: the
   peer refused it (where a refusal means that), or its first and only send never reached
   the peer (refused connection, 503, open breaker). Only then may the next attempt go to
   another peer. Any other failure (a timeout, a 5xx) leaves the outcome unknown: only the
   same peer with the same key is asked again, however long it takes, because it may
   have acted.
4. Abandoned when the order ended. Under the parent's row lock, which every writer and
   claimer takes, an attempt written but never sent is abandoned, so nobody can claim it
   any more; an attempt in flight is settled by sending its key again before anything is
   undone.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from core.http import ExternalError, ExternalRejected, ExternalUnavailable
from core.models import OutboundAttempt

STARTED = "started"
UNAVAILABLE = "unavailable"
ERROR = "error"
ABANDONED = "abandoned"
# The outcome is not known: only the same peer with the same key may be asked.
UNRESOLVED = frozenset({STARTED, ERROR})
# A sender holds its attempt this much longer than its call can take.
LEASE_MARGIN_SECONDS = 5

P = TypeVar("P", bound=models.Model)
A = TypeVar("A", bound=OutboundAttempt)
R = TypeVar("R")


class AttemptInProgress(ExternalError):
    """Another process is sending this attempt right now: try again later."""


def lease_until(now: datetime) -> datetime:
    call_seconds = settings.COT_HTTP_CONNECT_TIMEOUT + settings.COT_HTTP_READ_TIMEOUT
    return now + timedelta(seconds=call_seconds + LEASE_MARGIN_SECONDS)


def attempt_settle(attempt: OutboundAttempt, *, status: str, response: dict[str, Any]) -> None:
    """Record the attempt's outcome (its lease ends with it). Call it in the transaction
    that records what the outcome did to the parent, after the parent's write, so that
    locks are always taken parent first."""
    attempt.status, attempt.response, attempt.lease_until = status, response, None
    attempt.save(update_fields=["status", "response", "lease_until", "updated_at"])


@dataclass(frozen=True)
class Attempts(Generic[P, A]):
    """One kind of attempt: its model, its parent, where it goes and what its outcomes mean.

    `parent` and `peer` name the attempt's foreign key to its parent and the field naming
    its peer; `scope` narrows the model's rows to this kind (and is written into new ones);
    `ready` is the parent's state in which the call may still be sent; `nowhere` the
    statuses of an attempt that surely had no effect. `refused`, if given, is the status
    of an attempt its peer refused (4xx): it went nowhere, and that peer is not asked again
    for this parent. Without `failover` there is no other peer to move to, and an
    unreachable peer is only asked again later. `final` are the statuses of an attempt its
    peer answered with a final no (a declined charge): if the parent is made `ready` again
    after one (the customer pays another way), the next send is a new attempt with a key
    of its own, never the old key with new content."""

    model: type[A]
    _: KW_ONLY
    parent: str
    peer: str
    ready: dict[str, Any]
    nowhere: Collection[str]
    target: Callable[[str], str]
    in_progress: type[AttemptInProgress] = AttemptInProgress
    scope: dict[str, Any] = field(default_factory=dict)
    refused: str | None = None
    failover: bool = True
    final: Collection[str] = ()

    def of(self, parent: P) -> QuerySet[A]:
        """The parent's attempts of this kind, oldest first."""
        return self.model.objects.filter(**{self.parent: parent}, **self.scope).order_by("pk")

    def write(self, parent: P, *, peer: str, key: str, **fields: Any) -> A:
        """A new attempt, written already claimed by this process (sent once, leased). Call
        it under the parent's row lock, or for a parent nobody else can see yet."""
        return self.model.objects.create(
            **{self.parent: parent, self.peer: peer},
            **self.scope,
            idempotency_key=key,
            sends=1,
            lease_until=lease_until(timezone.now()),
            **fields,
        )

    def current(
        self,
        parent: P,
        *,
        peers: Iterable[str],
        tried: set[str],
        key: str,
        wanted: bool = True,
        **fields: Any,
    ) -> tuple[A | None, int | None]:
        """The attempt to send next; call it under the parent's row lock. The last attempt,
        unless it went nowhere or was answered with a final no (else its key must be
        reused: its peer may have acted); else, if
        the parent still `wanted` a call, a new attempt `<key>:<n>` at the first of `peers`
        that was not tried in this call and has not refused this parent, written already
        claimed by this process. Returns the attempt with its send count when it is new
        (else None: claim it before sending), or (None, None) when there is none."""
        attempts = list(self.of(parent))
        if attempts and attempts[-1].status not in {*self.nowhere, *self.final}:
            return attempts[-1], None
        refused = {getattr(a, self.peer) for a in attempts if a.status == self.refused}
        remaining = [p for p in peers if p not in tried and p not in refused]
        if not wanted or not remaining:
            return None, None
        attempt = self.write(parent, peer=remaining[0], key=f"{key}:{len(attempts) + 1}", **fields)
        return attempt, 1

    def claim(self, parent: P, attempt: A) -> int | None:
        """Take the right to send `attempt` now. Returns how often it has been sent, this
        send included; None when it is settled, another process is sending it, or its
        parent no longer wants it."""
        now = timezone.now()
        with transaction.atomic():
            # The parent's row lock orders this claim against compensation: a parent given
            # up (or being given up) never gets the call.
            if (
                not type(parent)
                .objects.select_for_update()
                .filter(pk=parent.pk, **self.ready)
                .exists()
            ):
                return None
            claimed = (
                self.model.objects.filter(pk=attempt.pk, status__in=UNRESOLVED)
                .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
                .update(sends=F("sends") + 1, lease_until=lease_until(now))
            )
        if not claimed:
            return None
        attempt.refresh_from_db(fields=["sends", "status"])
        return attempt.sends

    def send(
        self,
        parent: P,
        attempt: A,
        call: Callable[[], R],
        record: Callable[[R], tuple[str, dict[str, Any]]],
        *,
        sends: int | None = None,
    ) -> bool:
        """Send `attempt` through `call` and record what it did: `record` writes the answer
        into the parent and returns the attempt's status and response, all in one
        transaction. True when the attempt did what it was for (by this call or another
        process's; `parent` is then up to date), False when it went nowhere (the caller may
        try the next peer). Raises when its outcome is unknown (try again later: same peer,
        same key) or another process is sending it. `sends` is given for an attempt this
        process has claimed already."""
        if sends is None:
            sends = self.claim(parent, attempt)
        if sends is None:
            attempt.refresh_from_db(fields=["status"])
            if attempt.status in UNRESOLVED:
                peer = getattr(attempt, self.peer)
                raise self.in_progress(self.target(peer), "sent by another process")
            parent.refresh_from_db()  # settled by another process: read its outcome
            return attempt.status not in self.nowhere
        rows = self.model.objects.filter(pk=attempt.pk)
        try:
            answer = call()
        except ExternalUnavailable:
            # Only a first send that surely went nowhere frees the parent to move on; an
            # earlier send of this key may have been acted on, so then wait for this peer.
            if (
                self.failover
                and sends == 1
                and rows.filter(status=STARTED).update(status=UNAVAILABLE, lease_until=None)
            ):
                return False
            rows.update(lease_until=None)
            raise
        except Exception as exc:
            if self.refused is not None and isinstance(exc, ExternalRejected):
                # The peer answered and did nothing: it does not take this request. A peer
                # that had acted on this key would answer with that instead.
                rows.filter(status__in=UNRESOLVED).update(
                    status=self.refused,
                    response={"status_code": exc.status_code, "body": exc.body},
                    lease_until=None,
                )
                return False
            rows.filter(status__in=UNRESOLVED).update(status=ERROR, lease_until=None)
            raise
        with transaction.atomic():
            status, response = record(answer)
            attempt_settle(attempt, status=status, response=response)
        return True

    def abandon(self, parent: P) -> A | None:
        """When the order ended, under the parent's row lock: the attempts written but never
        sent are abandoned (no sender can claim them any more). Returns the attempt still
        in flight (sent, its outcome unknown), if any; with none, nothing of this kind can
        reach the peer any more, since a new attempt needs this lock too."""
        attempts = self.of(parent)
        attempts.filter(status=STARTED, sends=0).update(status=ABANDONED)
        return attempts.filter(status__in=UNRESOLVED).last()
