"""Outbound webhooks: every event of a client's orders, POSTed to the client's URL,
signed with its secret, one at a time per order in timeline order.

The order timeline (`OrderEvent`) is the outbox. A `WebhookDelivery` row per event is
made from the timeline by the order's pump (after every commit) and by the sweeper (for
events whose pump was never enqueued: a crash between commit and enqueue), so an event
is delayed by a crash, never lost. Details and the reasoning: docs/NOTIFICATIONS.md.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.http import NoCookies
from core.models import ApiClient
from core.webhook_urls import WebhookUrlInvalid, WebhookUrlRefused, webhook_url_check
from core.webhooks import SIGNATURE_HEADER, webhook_signatures
from notifications.enums import WebhookStatus
from notifications.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookOutboxCursor,
)
from notifications.services.outbox import outbox_cursor_advance
from orders.models import Order, OrderEvent

logger = logging.getLogger(__name__)

# Longer than one POST can take (connect + read timeout), so a lease only runs out when
# its sender died; then the sweeper hands the delivery to another worker.
LEASE_SECONDS = 60
# Deliveries one pump sends in a row before it hands over to a fresh task.
PUMP_BATCH = 100
# Receiving hosts a process keeps a connection pool for (least recently made goes first).
HOST_POOLS = 64

_local = threading.local()


def _http(host: str) -> httpx.Client:
    """The connection pool for one receiving host name. Requests name the checked address
    instead of the host (see `_post`), and a pool tells connections apart by address only:
    one pool per host keeps a delivery off a connection whose TLS certificate was checked
    for another host that shares the address."""
    # Not core.http: client URLs are arbitrary, so no breaker per target and no pooling
    # beyond a few keep-alive connections; never follow redirects (a 3xx is not a 2xx).
    pid = os.getpid()
    clients: dict[str, httpx.Client] | None = getattr(_local, "clients", None)
    if clients is None or getattr(_local, "pid", None) != pid:
        clients = _local.clients = {}  # a forked child makes its own connections
        _local.pid = pid
    client = clients.get(host)
    if client is None:
        if len(clients) >= HOST_POOLS:
            clients.pop(next(iter(clients))).close()
        client = clients[host] = httpx.Client(
            follow_redirects=False,
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=4),
            cookies=NoCookies(),  # a delivery carries nothing an earlier answer set
            # A proxy from the environment would resolve the name itself, after the check.
            trust_env=False,
        )
    return client


def webhook_payload(event: OrderEvent) -> bytes:
    """The body for `event` (the document in docs/NOTIFICATIONS.md), the same bytes on every
    attempt."""
    document = {
        "id": event.pk,
        "type": event.type,
        "order_id": str(event.order_id),
        "at": event.at.isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def webhook_deliveries_create(*, order_id: uuid.UUID) -> int:
    """Make the delivery rows for the order's events that have none yet (only when the
    order's client has a webhook URL). Idempotent: the row is unique per event."""
    return _deliveries_make(order_id=order_id, client=_order_client(order_id))


def _order_client(order_id: uuid.UUID) -> ApiClient:
    return Order.objects.select_related("client").get(pk=order_id).client


def _deliveries_make(*, order_id: uuid.UUID, client: ApiClient) -> int:
    if not client.webhook_url:
        return 0
    missing = (
        OrderEvent.objects.filter(order_id=order_id)
        .filter(~Exists(WebhookDelivery.objects.filter(event_id=OuterRef("pk"))))
        .values_list("pk", "type")
    )
    now = timezone.now()
    rows = [
        WebhookDelivery(
            client_id=client.pk,
            order_id=order_id,
            event_id=event_id,
            event_type=event_type,
            next_attempt_at=now,
        )
        for event_id, event_type in missing
    ]
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _backoff(attempts: int) -> float:
    # Exponential with jitter: base, 2x base, 4x base, ... capped.
    ceiling = min(
        settings.COT_WEBHOOK_RETRY_MAX_SECONDS,
        settings.COT_WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempts - 1),
    )
    return random.uniform(ceiling / 2, ceiling)


def _post(delivery: WebhookDelivery, client: ApiClient) -> tuple[int | None, str, bool]:
    """POST the delivery once: (status code, error, final). `final` means another attempt
    cannot help (the URL is unusable); a URL refused as things stand (its host resolves
    to a private address now, say) fails this attempt only."""
    url = client.webhook_url
    try:
        # Resolved and checked now, not only when the URL was set: DNS may have changed.
        addresses = webhook_url_check(url)
        target = httpx.URL(url)
    except (WebhookUrlInvalid, httpx.InvalidURL) as exc:
        return None, str(exc)[:300], True
    except WebhookUrlRefused as exc:
        return None, f"refused: {exc}"[:300], False
    # The connection goes to an address just checked, not to whatever the name resolves
    # to a moment later (DNS rebinding), so there is no window between check and connect:
    # the URL names the address, while the Host header, TLS SNI and the certificate
    # check still use the host name. A host with several addresses is tried on each in
    # turn, one per attempt.
    address = addresses[delivery.attempts % len(addresses)]
    host = target.raw_host.decode("ascii")
    body = webhook_payload(delivery.event)  # read with the delivery (select_related)
    headers = {
        "Host": target.netloc.decode("ascii"),
        "Content-Type": "application/json",
        "User-Agent": "COT-Webhooks/1",
        SIGNATURE_HEADER: webhook_signatures(client.webhook_signing_secrets(timezone.now()), body),
    }
    timeout = httpx.Timeout(
        settings.COT_WEBHOOK_TIMEOUT_SECONDS, connect=settings.COT_HTTP_CONNECT_TIMEOUT
    )
    try:
        response = _http(host).post(
            target.copy_with(host=str(address)),
            content=body,
            headers=headers,
            timeout=timeout,
            extensions={"sni_hostname": host},
        )
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:300], False
    if 200 <= response.status_code < 300:
        return response.status_code, "", False
    return response.status_code, f"HTTP {response.status_code}", False


def _attempt(delivery: WebhookDelivery, client: ApiClient) -> float | None:
    """Send a claimed delivery once and record the outcome. Returns the delay before the
    next attempt when it failed and may be retried, else None (delivered or failed).

    A delivery is retried until `COT_WEBHOOK_RETRY_WINDOW_SECONDS` after its first
    attempt (the last retry is made at the window's end), whatever the number of
    attempts: a receiver that is down for a day loses nothing."""
    started_at, started = timezone.now(), time.perf_counter()
    status_code, error, final = _post(delivery, client)
    attempts = delivery.attempts + 1
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=WebhookAttempt.objects.filter(delivery=delivery).count() + 1,
        started_at=started_at,
        duration_ms=int((time.perf_counter() - started) * 1000),
        status_code=status_code,
        error=error,
    )
    now = timezone.now()
    first_attempt_at = delivery.first_attempt_at or started_at
    window_ends = first_attempt_at + timedelta(seconds=settings.COT_WEBHOOK_RETRY_WINDOW_SECONDS)
    fields: dict[str, Any] = {
        "attempts": attempts,
        # Set by the first attempt only, never moved by a later one.
        "first_attempt_at": Coalesce(F("first_attempt_at"), Value(started_at)),
        "lease_until": None,
        "last_status_code": status_code,
        "last_error": error,
    }
    delay = None
    if not error:
        fields.update(status=WebhookStatus.DELIVERED, delivered_at=now, next_attempt_at=None)
    elif final or now >= window_ends:
        logger.error("webhook for event %s failed for good: %s", delivery.event_id, error)
        fields.update(status=WebhookStatus.FAILED, next_attempt_at=None)
    else:
        delay = min(_backoff(attempts), (window_ends - now).total_seconds())
        logger.warning("webhook for event %s: %s; retry in %.1fs", delivery.event_id, error, delay)
        fields["next_attempt_at"] = now + timedelta(seconds=delay)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    return delay


def webhook_order_pump(*, order_id: uuid.UUID) -> float | None:
    """Deliver the order's pending events in timeline order, each only after the one
    before it was delivered or failed for good.

    Returns after the head delivery failed with the delay before its retry (the caller
    schedules the next pump), or None when there is nothing more to do right now: all
    delivered, the head's retry is not due yet (its pump is scheduled), or another worker
    holds the head (that worker carries on with the rest)."""
    # The client is read once per pump: a URL or secret changed meanwhile applies from
    # the next pump on (every delivery of an order belongs to the order's client).
    client = _order_client(order_id)
    _deliveries_make(order_id=order_id, client=client)
    for _ in range(PUMP_BATCH):
        head = (
            WebhookDelivery.objects.filter(order_id=order_id, status=WebhookStatus.PENDING)
            .select_related("event")
            .order_by("event_id")
            .first()
        )
        if head is None:
            return None
        now = timezone.now()
        if head.next_attempt_at is not None and head.next_attempt_at > now:
            return None
        claimed = (
            WebhookDelivery.objects.filter(pk=head.pk, status=WebhookStatus.PENDING)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(lease_until=now + timedelta(seconds=LEASE_SECONDS))
        )
        if not claimed:
            return None
        delay = _attempt(head, client)
        if delay is not None:
            return delay
        # Events committed while this one was being sent get their rows now, so the
        # pump that found this one busy and stopped loses nothing.
        _deliveries_make(order_id=order_id, client=client)
    return 0.0


def webhook_outbox_sweep(*, batch: int = 500) -> set[uuid.UUID]:
    """The orders whose webhook pump must run again: those with events that have no
    delivery row yet (their rows are made here) and those whose next delivery is due
    with nobody sending it (a lost retry task, a sender that died).

    Events are read past a cursor that only moves over events older than
    `COT_WEBHOOK_OUTBOX_LAG_SECONDS`: a transaction still open may commit an event with a
    lower id than one already seen, and the lag is longer than any transaction lasts."""
    now = timezone.now()
    cursor, _ = WebhookOutboxCursor.objects.get_or_create(pk=1)
    missing = list(
        OrderEvent.objects.filter(pk__gt=cursor.event_id)
        .exclude(order__client__webhook_url="")
        .filter(~Exists(WebhookDelivery.objects.filter(event_id=OuterRef("pk"))))
        .order_by("pk")
        .values_list("pk", "order_id")[:batch]
    )
    orders = {order_id for _, order_id in missing}
    for order_id in orders:
        webhook_deliveries_create(order_id=order_id)
    outbox_cursor_advance(
        WebhookOutboxCursor,
        cursor=cursor.event_id,
        now=now,
        batch_end=missing[-1][0] if len(missing) == batch else None,
    )
    earlier_pending = WebhookDelivery.objects.filter(
        order_id=OuterRef("order_id"),
        status=WebhookStatus.PENDING,
        event_id__lt=OuterRef("event_id"),
    )
    due_heads = (
        WebhookDelivery.objects.filter(status=WebhookStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .filter(~Exists(earlier_pending))
        .values_list("order_id", flat=True)[:batch]
    )
    return orders | set(due_heads)


def webhook_deliveries_resend(*, deliveries: Iterable[WebhookDelivery]) -> set[uuid.UUID]:
    """Resend (ops in admin, or the client over the API): put delivered or failed
    deliveries back in line with a fresh retry window; a pending one is on its way
    already and stays as it is. Returns the orders whose pump must run."""
    ids = [d.pk for d in deliveries if d.status != WebhookStatus.PENDING]
    requeued = WebhookDelivery.objects.filter(pk__in=ids).exclude(status=WebhookStatus.PENDING)
    orders = set(requeued.values_list("order_id", flat=True))
    requeued.update(
        status=WebhookStatus.PENDING,
        attempts=0,
        first_attempt_at=None,
        next_attempt_at=timezone.now(),
        lease_until=None,
        delivered_at=None,
        last_status_code=None,
        last_error="",
    )
    return orders
