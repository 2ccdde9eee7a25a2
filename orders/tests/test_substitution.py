"""A substitute offered in review and the client's answer (inline pipeline, real database,
Redis and simulator): the offer's refusals, accept (charged at the substitute's price, its
stock reserved and committed, the original's released), decline (dropped or rejected),
expiry through the sweep, and a second answer refused."""

import base64
import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for
from inventory.models import StockBatch
from orders.enums import OrderStatus
from orders.models import Order, OrderEvent, Substitution
from orders.services.holds import order_expire_holds
from orders.tasks import expire_substitutions
from orders.tests.factories import place_order
from payments.models import Payment
from prescriptions.enums import PrescriptionStatus
from prescriptions.models import Prescription, PrescriptionItem
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db

# An OTC line and an Rx line with a cheaper generic: 2 x 30 + 10 x 95 = 1010.00.
ITEMS = [("PARA-500", 2), ("AMOX-500", 10)]
REVIEW = "/api/v1/prescriptions/{}/review/"


@pytest.fixture
def shop(demo_catalog, simulator, settings):
    settings.COT_PIPELINE_MODE = "inline"
    return ApiClientFactory()


def api_for(client):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(client)}")
    return api


@pytest.fixture
def pharmacist(db):
    User.objects.create_user("ph", password="pw-123456789", is_staff=True).groups.add(
        Group.objects.get(name="pharmacist")
    )
    api = APIClient()
    token = base64.b64encode(b"ph:pw-123456789").decode()
    api.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return api


@pytest.fixture
def held(shop, django_capture_on_commit_callbacks):
    """An order on hold for its pending prescription."""

    def place(on_partial="reject", items=ITEMS):
        prescription = prescription_with(
            [("AMOX-500", 10)], client=shop, status=PrescriptionStatus.PENDING_REVIEW
        )
        with django_capture_on_commit_callbacks(execute=True):
            order = place_order(
                shop, items=items, prescription_id=prescription.pk, on_partial=on_partial
            )
        order.refresh_from_db()
        assert order.status == OrderStatus.ON_HOLD
        return order

    return place


@pytest.fixture
def offer(pharmacist, django_capture_on_commit_callbacks):
    def offer(order, substitute_sku="AMOX-500-G", sku="AMOX-500", order_id=None):
        line = {
            "sku": sku,
            "decision": "substitute",
            "substitute_sku": substitute_sku,
            "order_id": str(order_id or order.pk),
        }
        with django_capture_on_commit_callbacks(execute=True):
            return pharmacist.post(
                REVIEW.format(order.prescription_id),
                {"decision": "partial", "lines": [line]},
                format="json",
            )

    return offer


@pytest.fixture
def answer(django_capture_on_commit_callbacks):
    def answer(order, substitution_id, verb, client=None):
        with django_capture_on_commit_callbacks(execute=True):
            return api_for(client or order.client).post(
                f"/api/v1/orders/{order.pk}/substitutions/{substitution_id}/{verb}/"
            )

    return answer


def units(sku):
    """(reserved, on_hand) of the SKU over all its batches."""
    batches = StockBatch.objects.filter(product__sku=sku)
    return (
        sum(batches.values_list("reserved", flat=True)),
        sum(batches.values_list("on_hand", flat=True)),
    )


def charges(simulator, order):
    return [c for c in simulator.ledger()["charges"] if str(order.pk) in c["idempotency_key"]]


def proposed(order):
    return api_for(order.client).get(f"/api/v1/orders/{order.pk}/").json()["substitutions"]


@pytest.mark.parametrize(
    ("substitute_sku", "sku", "other_order"),
    [
        ("CEFI-200-G", "AMOX-500", False),  # another composition
        ("NO-SUCH-SKU", "AMOX-500", False),  # unknown sku
        ("AMOX-500-G", "AMOX-500", True),  # an order not waiting on this prescription
    ],
    ids=["other-composition", "unknown-sku", "unknown-order"],
)
def test_an_invalid_offer_is_refused_and_nothing_is_written(
    held, offer, substitute_sku, sku, other_order
):
    order = held()
    response = offer(
        order,
        substitute_sku=substitute_sku,
        sku=sku,
        order_id="00000000-0000-0000-0000-000000000000" if other_order else None,
    )
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["code"] == "invalid_substitute"
    assert not Substitution.objects.exists()
    assert Prescription.objects.get(pk=order.prescription_id).status == "pending_review"
    assert set(PrescriptionItem.objects.values_list("decision", flat=True)) == {""}
    order.refresh_from_db()
    assert order.status == OrderStatus.ON_HOLD


def test_an_offer_without_stock_is_refused(held, offer):
    order = held()
    StockBatch.objects.filter(product__sku="AMOX-500-G").update(on_hand=0)
    response = offer(order)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_substitute"
    assert not Substitution.objects.exists()


def test_accepted_the_order_is_charged_at_the_substitutes_price(
    held, offer, answer, simulator, shop
):
    amox_before, generic_before = units("AMOX-500"), units("AMOX-500-G")
    order = held()
    assert units("AMOX-500")[0] == amox_before[0] + 10
    assert offer(order).status_code == 200
    order.refresh_from_db()
    # The prescription is reviewed, but the order waits for the client's answer.
    assert order.status == OrderStatus.ON_HOLD
    [shown] = proposed(order)
    assert (shown["sku"], shown["substitute_sku"], shown["status"]) == (
        "AMOX-500",
        "AMOX-500-G",
        "proposed",
    )
    assert shown["price_difference"] == "-330.00"  # 10 x (62 - 95)
    [event] = OrderEvent.objects.filter(order=order, type="substitution.proposed")
    assert event.data == {
        "id": shown["id"],
        "sku": "AMOX-500",
        "substitute_sku": "AMOX-500-G",
        "price_difference": "-330.00",
    }

    response = answer(order, shown["id"], "accept")
    assert response.status_code == 200, response.content
    order.refresh_from_db()
    assert order.status == OrderStatus.CONFIRMED
    assert order.total_amount == Decimal("680.00")  # 2 x 30 + 10 x 62
    assert [c["amount"] for c in charges(simulator, order)] == ["680.00"]
    assert Payment.objects.get(order_id=order.pk).amount == Decimal("680.00")
    # The original's units went back; the substitute's left the shelf.
    assert units("AMOX-500") == amox_before
    assert units("AMOX-500-G") == (generic_before[0], generic_before[1] - 10)
    # Claimed against the original line's prescription item.
    assert PrescriptionItem.objects.get(sku="AMOX-500").dispensed_quantity == 10
    body = api_for(shop).get(f"/api/v1/orders/{order.pk}/").json()
    line = next(i for i in body["items"] if i["sku"] == "AMOX-500-G")
    assert (line["substituted_for"], line["unit_price"], line["line_total"]) == (
        "AMOX-500",
        "62.00",
        "620.00",
    )
    assert body["substitutions"][0]["status"] == "accepted"
    assert OrderEvent.objects.filter(order=order, type="substitution.accepted").count() == 1
    # A second answer is refused.
    assert answer(order, shown["id"], "decline").status_code == 409
    assert answer(order, shown["id"], "decline").json()["errors"][0]["code"] == (
        "substitution_closed"
    )


def test_declined_a_ship_available_order_drops_the_line_and_ships_the_rest(
    held, offer, answer, simulator
):
    amox_before = units("AMOX-500")
    order = held(on_partial="ship_available")
    offer(order)
    [shown] = proposed(order)
    assert answer(order, shown["id"], "decline").status_code == 200
    order.refresh_from_db()
    assert order.status == OrderStatus.CONFIRMED
    assert order.total_amount == Decimal("60.00")
    assert [c["amount"] for c in charges(simulator, order)] == ["60.00"]
    amox = order.lines.get(sku="AMOX-500")
    assert (amox.status, amox.drop_reason) == ("dropped", "substitution_declined")
    assert units("AMOX-500") == amox_before
    assert OrderEvent.objects.filter(order=order, type="substitution.declined").count() == 1


def test_declined_a_reject_order_is_rejected(held, offer, answer, simulator):
    amox_before = units("AMOX-500")
    order = held()
    offer(order)
    [shown] = proposed(order)
    assert answer(order, shown["id"], "decline").status_code == 200
    order.refresh_from_db()
    assert (order.status, order.failure_reason) == (OrderStatus.REJECTED, "substitution_declined")
    assert charges(simulator, order) == []
    assert units("AMOX-500") == amox_before
    assert answer(order, shown["id"], "accept").status_code == 409


def test_unanswered_the_offer_expires_through_the_sweep(
    held, offer, answer, simulator, django_capture_on_commit_callbacks
):
    order = held(on_partial="ship_available")
    offer(order)
    [shown] = proposed(order)
    # Before the timeout nothing happens, and the review-hold timeout leaves it alone.
    assert expire_substitutions() == 0
    assert order_expire_holds(now=timezone.now() + datetime.timedelta(days=30)) == 0
    Substitution.objects.filter(pk=shown["id"]).update(
        created_at=timezone.now() - datetime.timedelta(seconds=3601)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert expire_substitutions() == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.CONFIRMED
    assert [c["amount"] for c in charges(simulator, order)] == ["60.00"]
    assert proposed(order)[0]["status"] == "expired"
    assert answer(order, shown["id"], "accept").status_code == 409


def test_only_the_orders_own_client_may_answer(held, offer, answer):
    order = held()
    offer(order)
    [shown] = proposed(order)
    stranger = ApiClientFactory(name="another-shop")
    assert answer(order, shown["id"], "accept", client=stranger).status_code == 404
    assert Order.objects.get(pk=order.pk).status == OrderStatus.ON_HOLD
    assert Substitution.objects.get(pk=shown["id"]).status == "proposed"


def test_the_admin_review_page_lists_only_valid_substitutes_and_offers_one(
    held, django_capture_on_commit_callbacks
):
    from django.test import Client
    from django.urls import reverse

    order = held()
    user = User.objects.create_user("ph-admin", is_staff=True)
    user.groups.add(Group.objects.get(name="pharmacist"))
    browser = Client()
    browser.force_login(user)
    url = reverse("admin:prescriptions_prescription_review", args=[order.prescription_id])
    page = browser.get(url).content.decode()
    item = PrescriptionItem.objects.get(prescription_id=order.prescription_id)
    choice = f"{order.pk}|AMOX-500-G"
    assert f'name="line-{item.pk}-substitute"' in page
    assert choice in page
    assert "CEFI-200-G" not in page  # another composition is never offered
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            url,
            {
                "decision": "partial",
                "note": "",
                f"line-{item.pk}-decision": "approved",
                f"line-{item.pk}-substitute": choice,
            },
        )
    assert response.status_code == 302
    [substitution] = Substitution.objects.all()
    assert (substitution.order_id, substitution.substitute_sku) == (order.pk, "AMOX-500-G")
    order.refresh_from_db()
    assert order.status == OrderStatus.ON_HOLD
