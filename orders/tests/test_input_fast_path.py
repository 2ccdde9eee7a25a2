"""StrictSerializer's fast path must decide exactly as DRF's validation does: the same
validated data (key order included: the address is stored as given), the same errors.
Checked over variants of the contract's order body, one field changed at a time."""

import copy
import json
import uuid
from unittest import mock

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import ValidationError

from core import serializers as strict
from orders.serializers import OrderCancelIn, OrderPlaceIn
from orders.tests.factories import ORDER_BODY


class Client:
    channel = "web"


VALUES = [
    None, "", " ", " x", "x ", "x", "x" * 64, "x" * 65, "x" * 200, "x" * 201, "x" * 255,
    0, 1, 2, 100, 101, -1, 10**30, True, False, 1.0, 2.5, "2", "1.0", [], {}, [1], {"a": 1},
    "a\x00b", "\u00fcml\u00e4ut", "560001", "060001", "56000", "+919800000001", "9800000001",
    str(uuid.UUID(int=7)), uuid.UUID(int=7).hex, "{" + str(uuid.UUID(int=7)) + "}",
    "upi", "cod", "card", "UPI", "web", "mobile", "a@b.in", "not-an-email", "PARA-500",
]  # fmt: skip


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, (*prefix, index))


def changed(body, path, value):
    body = copy.deepcopy(body)
    target = body
    for part in path[:-1]:
        target = target[part]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


FULL = copy.deepcopy(ORDER_BODY)
FULL["items"].append({"sku": "ORS-ORG", "quantity": 1})
FULL["delivery_address"]["email"] = "a.rao@example.in"
FULL["channel"] = "web"


def variants():
    for base in (ORDER_BODY, FULL):
        yield base
        for path in list(paths(base))[1:]:
            for value in [*VALUES, KeyError]:
                yield changed(base, path, value)
        for path in paths(base):
            if isinstance(at(base, path), dict):
                yield changed(base, (*path, "extra"), 1)
    item = {"sku": "PARA-500", "quantity": 1}
    for items in ([], [item] * 2, [dict(item, sku=f"S-{n}") for n in range(51)]):
        yield dict(ORDER_BODY, items=items)
    yield dict(ORDER_BODY, payment_method="cod", payment_token="")
    yield dict(ORDER_BODY, payment_method="upi", payment_token="")
    yield dict(ORDER_BODY, delivery_address={**ORDER_BODY["delivery_address"], "line2": "  "})


def at(body, path):
    for part in path:
        body = body[part]
    return body


def fast(body):
    """True if the fast path decides `body` (as valid) on its own."""
    serializer = OrderPlaceIn(context={"client": Client()})
    try:
        serializer.validate(strict._fast_serializer(serializer, body))
    except (strict._NotFast, ValidationError, DjangoValidationError):
        return False
    return True


def decide(serializer_class, body, fast):
    serializer = serializer_class(data=body, context={"client": Client()})
    if fast:
        valid = serializer.is_valid()
    else:
        with mock.patch.object(strict, "_fast_serializer", side_effect=strict._NotFast):
            valid = serializer.is_valid()
    data = serializer.validated_data if valid else None
    return valid, json.dumps(data, default=str), json.dumps(serializer.errors, default=str)


def test_the_fast_path_decides_as_drf_does():
    taken = 0
    for body in variants():
        slow = decide(OrderPlaceIn, body, fast=False)
        assert decide(OrderPlaceIn, body, fast=True) == slow, body
        if fast(body):
            assert slow[0], body  # never accepts what DRF refuses
            taken += 1
    assert taken > 50  # it does take the valid variants, not only ever fall back


def test_plain_bodies_take_the_fast_path_and_odd_ones_do_not():
    assert fast(ORDER_BODY) and fast(FULL)
    assert not fast(changed(ORDER_BODY, ("customer_id",), " C-1"))  # DRF trims it
    assert not fast(changed(ORDER_BODY, ("items", 0, "quantity"), "2"))  # DRF converts it


@pytest.mark.parametrize("body", [{}, {"reason": "changed my mind"}, {"reason": ""}, {"x": 1}])
def test_the_cancel_body_too(body):
    assert decide(OrderCancelIn, body, fast=True) == decide(OrderCancelIn, body, fast=False)
