"""The public order API: one view per operation (input -> service/selector -> output)."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from drf_standardized_errors.openapi_validation_errors import extend_validation_errors
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import Conflict
from core.logs import log_context_bind
from core.models import ApiClient
from core.permissions import IsApiClient
from core.ratelimits import ClientRequestThrottle, OrderPlacementThrottle
from core.schema import conflict_response
from orders import pipeline, selectors
from orders.filters import OrderFilter
from orders.models import Order, Substitution
from orders.schema import (
    ORDER_PLACE_EXAMPLE,
    ORDER_RECEIVED_EXAMPLE,
    OrderDoc,
    OrderListQueryDoc,
    OrderPage,
    ReturnDoc,
    ReturnListDoc,
)
from orders.serializers import (
    OrderCancelIn,
    OrderCollectIn,
    OrderOut,
    OrderPaymentRetryIn,
    OrderPlaceIn,
    ReturnOut,
    ReturnRequestIn,
)
from orders.services.cancellation import (
    CLIENT,
    AlreadyShipped,
    LineCancel,
    QuantityExceeded,
    UnknownLine,
    order_cancel,
    order_lines_cancel,
)
from orders.services.payment_retry import PaymentRetryClosed, order_payment_retry
from orders.services.pickup import (
    MAX_WRONG_CODES,
    PickupCodeInvalid,
    PickupLocked,
    order_collect,
)
from orders.services.placement import (
    IdempotencyKeyReused,
    ItemRequest,
    UnknownCenter,
    UnknownSku,
    order_place,
)
from orders.services.returns import (
    RefundVpaRequired,
    ReturnLineRequest,
    ReturnRefused,
    UnknownReturnSku,
    return_list_for_order,
    return_request,
)
from orders.services.substitution import SubstitutionClosed, substitution_answer
from orders.services.transitions import InvalidTransition

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="1-255 characters; the same key and body return the original order.",
)


def _replayed_header(status_code: int) -> OpenApiParameter:
    return OpenApiParameter(
        "Idempotent-Replayed",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        response=[status_code],
        enum=["true"],
        description="Present when the answer replays an earlier request's (same key and body).",
    )


# Errors the view itself raises on a line's SKU (the catalog's or the order's).
SKU_ERRORS = ["unknown_sku", "duplicate"]


def _fingerprint(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise serializers.ValidationError(
            {"Idempotency-Key": ["Must be 1 to 255 printable characters."]}
        )
    return key


def _key_reused() -> Conflict:
    return Conflict(
        "This Idempotency-Key was used with a different request body.",
        code="idempotency_key_reused",
    )


def _unknown_sku(field: str, index: int, detail: str) -> serializers.ValidationError:
    """A 400 on `<field>.<index>.sku`: a SKU the catalog (or the order) does not have."""
    return serializers.ValidationError(
        {field: {index: {"sku": [serializers.ErrorDetail(detail, code="unknown_sku")]}}}
    )


def _own_order(request: Request, order_id: uuid.UUID) -> Order:
    """The calling client's order, or 404 (another client's answers exactly like none)."""
    order = selectors.order_get_for_client(client=request.user, order_id=order_id)
    if order is None:
        raise exceptions.NotFound("No such order.")
    return order


def _valid_body(
    request: Request, serializer: type[serializers.Serializer], **kwargs: Any
) -> serializers.Serializer:
    """The request's JSON object, validated by `serializer` (else 400)."""
    if not isinstance(request.data, dict):
        raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
    payload = serializer(data=request.data, **kwargs)
    payload.is_valid(raise_exception=True)
    return payload


def _order_now(client: ApiClient, order_id: uuid.UUID) -> dict[str, Any]:
    """The order's body as it stands now (after a change the view just made)."""
    return _render([selectors.order_get_for_client(client=client, order_id=order_id)])[0]


def _render(orders: list[Order]) -> list[dict[str, Any]]:
    context = {"related": selectors.order_related(orders)}
    return OrderOut(orders, many=True, context=context).data


class OrderPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


@extend_validation_errors(SKU_ERRORS, field_name="items.INDEX.sku", methods=["post"])
class OrderListCreateApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsApiClient]
    throttle_classes = [ClientRequestThrottle, OrderPlacementThrottle]

    @extend_schema(
        request=OrderPlaceIn,
        responses={
            202: OrderDoc,
            409: conflict_response("orders_place", "idempotency_key_reused"),
        },
        parameters=[
            IDEMPOTENCY_HEADER,
            _replayed_header(202),
            OpenApiParameter(
                "Location",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                response=[202],
                required=True,
                description="The order's URL.",
            ),
        ],
        examples=[ORDER_PLACE_EXAMPLE, ORDER_RECEIVED_EXAMPLE],
        summary="Place an order",
        description="202 with the order as committed (`received`); the pipeline decides "
        "the rest. 409 `idempotency_key_reused` when the Idempotency-Key came with "
        "another body.",
        operation_id="orders_place",
    )
    def post(self, request: Request) -> Response:
        client: ApiClient = request.user
        key = _idempotency_key(request)
        payload = _valid_body(request, OrderPlaceIn, context={"client": client})
        data = payload.validated_data
        address, contact = data.get("delivery_address"), data.get("contact")
        try:
            placed = order_place(
                client=client,
                customer_id=data["customer_id"],
                items=[ItemRequest(sku=i["sku"], quantity=i["quantity"]) for i in data["items"]],
                delivery_address=dict(address) if address is not None else None,
                payment_method=data["payment_method"],
                payment_token=data["payment_token"],
                prescription_id=data["prescription_id"],
                idempotency_key=key,
                fingerprint=_fingerprint(request.data),
                # Set by core.middleware.RequestContextMiddleware; kept on the order so a
                # support ticket's request id finds the order and its log lines.
                request_id=getattr(request, "request_id", ""),
                on_partial=data["on_partial"],
                pickup_center=data.get("fulfilment", {}).get("center", ""),
                contact=dict(contact) if contact is not None else None,
            )
        except IdempotencyKeyReused:
            raise _key_reused() from None
        except UnknownSku as exc:
            raise _unknown_sku("items", exc.index, str(exc)) from None
        except UnknownCenter as exc:
            raise serializers.ValidationError(
                {
                    "fulfilment": {
                        "center": [serializers.ErrorDetail(str(exc), code="unknown_center")]
                    }
                }
            ) from None
        order, replayed = placed.order, placed.replayed
        log_context_bind(order_id=order.pk)
        logger.info("order %s %s", order.number, "replayed" if replayed else "received")
        headers = {"Location": f"/api/v1/orders/{order.pk}/"}
        if replayed or settings.COT_PIPELINE_MODE == "inline":
            # A replay shows the order as it stands now; inline, the pipeline has run.
            body = _order_now(client, order.pk)
        else:
            # A new order as committed, from the objects in hand (it has no payment or
            # shipment yet): reading it back would cost five queries. Had a worker moved
            # it already, the read-back answer would have shown that only by chance.
            in_hand = {
                "lines": {order.pk: placed.lines},
                "events": {order.pk: placed.events},
                "substitutions": {order.pk: []},  # nothing is offered for a new order
            }
            body = OrderOut(order, context={"related": in_hand}).data
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)

    @extend_schema(
        responses={200: OrderPage},
        parameters=[OrderListQueryDoc],
        summary="List the client's orders, newest first",
        operation_id="orders_list",
    )
    def get(self, request: Request) -> Response:
        queryset: QuerySet[Order] = selectors.order_list_for_client(client=request.user)
        filterset = OrderFilter(request.query_params, queryset=queryset)
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        paginator = OrderPagination()
        page = paginator.paginate_queryset(filterset.qs, request, view=self)
        return paginator.get_paginated_response(_render(list(page)))


class OrderDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsApiClient]

    @extend_schema(responses={200: OrderDoc}, summary="Get one order", operation_id="orders_get")
    def get(self, request: Request, order_id: uuid.UUID) -> Response:
        order = _own_order(request, order_id)
        return Response(_render([order])[0])


@extend_validation_errors(SKU_ERRORS, field_name="lines.INDEX.sku", methods=["post"])
class OrderCancelApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsApiClient]

    @extend_schema(
        request=OrderCancelIn,
        responses={
            200: OrderDoc,
            409: conflict_response(
                "orders_cancel", "invalid_transition", "quantity_exceeded", "already_shipped"
            ),
        },
        summary="Cancel an order that has not shipped, or some of its units",
        description="Releases stock, voids or refunds the payment and cancels the "
        "shipment booking (the last two right after the answer). 409 `invalid_transition` "
        "once the order has shipped or ended, including a second cancel. With `lines`, "
        "only those units of a confirmed order, while their parcels are still booked: "
        "409 `quantity_exceeded` or `already_shipped` otherwise.",
        operation_id="orders_cancel",
    )
    def post(self, request: Request, order_id: uuid.UUID) -> Response:
        client: ApiClient = request.user
        order = _own_order(request, order_id)
        payload = _valid_body(request, OrderCancelIn)
        log_context_bind(order_id=order.pk)
        if "lines" in payload.validated_data:
            _lines_cancel(client, order, payload.validated_data)
            return Response(_order_now(client, order.pk))
        try:
            order_cancel(
                order=order,
                by=CLIENT,
                actor=f"client:{client.name}",
                note=payload.validated_data["reason"],
            )
        except InvalidTransition as exc:
            raise Conflict(
                f"An order that is {exc.current} cannot be cancelled.", code="invalid_transition"
            ) from None
        logger.info("order %s cancelled by the client", order.number)
        return Response(_order_now(client, order.pk))


class OrderCollectApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsApiClient]

    @extend_schema(
        request=OrderCollectIn,
        responses={
            200: OrderDoc,
            409: conflict_response(
                "orders_collect", "invalid_transition", "pickup_code_invalid", "pickup_locked"
            ),
        },
        summary="Hand an in-store pickup order over against its pickup code",
        description="The order must be `ready_for_pickup` (else 409 `invalid_transition`); "
        "it becomes `collected`. A wrong code is 409 `pickup_code_invalid` and is counted: "
        f"the {MAX_WRONG_CODES}th locks collection (409 `pickup_locked`, for every code) "
        "until ops unlock it in admin. Returns the order.",
        operation_id="orders_collect",
    )
    def post(self, request: Request, order_id: uuid.UUID) -> Response:
        client: ApiClient = request.user
        order = _own_order(request, order_id)
        payload = _valid_body(request, OrderCollectIn)
        log_context_bind(order_id=order.pk)
        try:
            order_collect(
                order_id=order.pk,
                code=payload.validated_data["pickup_code"],
                by=f"client:{client.name}",
            )
        except InvalidTransition as exc:
            raise Conflict(
                f"An order that is {exc.current} cannot be collected.", code="invalid_transition"
            ) from None
        except PickupCodeInvalid as exc:
            raise Conflict(
                f"Wrong pickup code ({exc.attempts_left} tries left before collection locks).",
                code="pickup_code_invalid",
            ) from None
        except PickupLocked:
            raise Conflict(
                f"Collection is locked after {MAX_WRONG_CODES} wrong pickup codes: ops can "
                "unlock it in admin once they have checked who is collecting.",
                code="pickup_locked",
            ) from None
        logger.info("order %s collected", order.number)
        return Response(_order_now(client, order.pk))


def _lines_cancel(client: ApiClient, order: Order, data: dict[str, Any]) -> None:
    """Cancel the units `data["lines"]` names, in the API's error shape."""
    lines = [LineCancel(sku=line["sku"], quantity=line["quantity"]) for line in data["lines"]]
    try:
        done = order_lines_cancel(
            order=order,
            lines=lines,
            by=CLIENT,
            actor=f"client:{client.name}",
            note=data["reason"],
        )
    except UnknownLine as exc:
        raise _unknown_sku("lines", exc.index, str(exc)) from None
    except InvalidTransition as exc:
        raise Conflict(
            f"Units of an order that is {exc.current} cannot be cancelled.",
            code="invalid_transition",
        ) from None
    except QuantityExceeded as exc:
        raise Conflict(str(exc), code="quantity_exceeded") from None
    except AlreadyShipped:
        raise Conflict(
            "A parcel holding these units was picked up already.", code="already_shipped"
        ) from None
    if done.whole:
        logger.info("order %s cancelled by the client (every unit left)", order.number)
    else:
        logger.info("order %s: units cancelled by the client (lines:%s)", order.number, done.number)


@extend_validation_errors(SKU_ERRORS, field_name="lines.INDEX.sku", methods=["post"])
@extend_validation_errors(["required"], field_name="refund_vpa", methods=["post"])
class OrderReturnsApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsApiClient]

    @extend_schema(
        request=ReturnRequestIn,
        responses={
            201: ReturnDoc,
            409: conflict_response(
                "orders_returns_request",
                "not_delivered",
                "return_window_closed",
                "not_returnable",
                "quantity_exceeded",
                "idempotency_key_reused",
            ),
        },
        parameters=[IDEMPOTENCY_HEADER, _replayed_header(201)],
        summary="Ask to return delivered units",
        description="409 `not_delivered`, `return_window_closed`, `not_returnable` or "
        "`quantity_exceeded` when the units cannot be returned; nothing is written then.",
        operation_id="orders_returns_request",
    )
    def post(self, request: Request, order_id: uuid.UUID) -> Response:
        client: ApiClient = request.user
        key = _idempotency_key(request)
        order = _own_order(request, order_id)
        payload = _valid_body(request, ReturnRequestIn)
        data = payload.validated_data
        log_context_bind(order_id=order.pk)
        try:
            requested = return_request(
                order=order,
                reason=data["reason"],
                note=data["note"],
                lines=[
                    ReturnLineRequest(sku=i["sku"], quantity=i["quantity"]) for i in data["lines"]
                ],
                refund_vpa=data["refund_vpa"],
                by=f"client:{client.name}",
                idempotency_key=key,
                fingerprint=_fingerprint(request.data),
            )
        except IdempotencyKeyReused:
            raise _key_reused() from None
        except UnknownReturnSku as exc:
            raise _unknown_sku("lines", exc.index, str(exc)) from None
        except RefundVpaRequired:
            raise serializers.ValidationError(
                {
                    "refund_vpa": [
                        serializers.ErrorDetail(
                            "Required for a cash-on-delivery order: the refund is paid out "
                            "to this UPI id.",
                            code="required",
                        )
                    ]
                }
            ) from None
        except ReturnRefused as exc:
            raise Conflict(exc.detail, code=exc.code) from None
        ret = requested.ret
        logger.info(
            "return %s of order %s %s",
            ret.pk,
            order.number,
            "replayed" if requested.replayed else "requested",
        )
        [ret] = return_list_for_order(order_id=order.pk).filter(pk=ret.pk)
        headers = {"Idempotent-Replayed": "true"} if requested.replayed else {}
        return Response(ReturnOut(ret).data, status=status.HTTP_201_CREATED, headers=headers)

    @extend_schema(
        responses={200: ReturnListDoc},
        summary="List the order's returns, oldest first",
        operation_id="orders_returns_list",
    )
    def get(self, request: Request, order_id: uuid.UUID) -> Response:
        order = _own_order(request, order_id)
        returns = return_list_for_order(order_id=order.pk)
        return Response({"results": ReturnOut(returns, many=True).data})


class SubstitutionAnswerApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsApiClient]

    @extend_schema(
        request=None,
        responses={
            200: OrderDoc,
            409: conflict_response("orders_substitution_answer", "substitution_closed"),
        },
        parameters=[
            OpenApiParameter(
                "answer", OpenApiTypes.STR, OpenApiParameter.PATH, enum=["accept", "decline"]
            )
        ],
        summary="Accept or decline a substitute a pharmacist offered for a line",
        description="`accept` or `decline` (the order's own client only: 404 otherwise). "
        "Accepted, the line becomes the substitute at its price; declined, the line is "
        "dropped (`ship_available`) or the order rejected. 409 `substitution_closed` when "
        "answered before or expired. Returns the order.",
        operation_id="orders_substitution_answer",
    )
    def post(
        self, request: Request, order_id: uuid.UUID, substitution_id: uuid.UUID, answer: str
    ) -> Response:
        client: ApiClient = request.user
        if answer not in ("accept", "decline"):
            raise exceptions.NotFound("No such answer.")
        log_context_bind(order_id=order_id)
        try:
            settled = substitution_answer(
                client=client,
                order_id=order_id,
                substitution_id=substitution_id,
                accept=answer == "accept",
            )
        except Substitution.DoesNotExist:
            raise exceptions.NotFound("No such substitution.") from None
        except SubstitutionClosed:
            raise Conflict(
                "This substitution was answered already or has expired.",
                code="substitution_closed",
            ) from None
        if settled.resumed:
            pipeline.resume(order_id)
        return Response(_order_now(client, order_id))


class OrderPaymentRetryApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsApiClient]

    @extend_schema(
        request=OrderPaymentRetryIn,
        responses={
            202: OrderDoc,
            409: conflict_response("orders_payment_retry", "invalid_transition"),
        },
        summary="Pay an order awaiting payment another way (payment retry)",
        description="For an order whose payment was declined and whose client has a payment "
        "retry window: `payment_method` and `payment_token` as when placing it (the order's "
        "own client only: 404 otherwise). The order goes on from the charge with a new "
        "charge attempt; `202` with the order. 409 `invalid_transition` when the order is "
        "not `awaiting_payment` (including a second, concurrent retry) or its window has "
        "passed; nothing is written then.",
        operation_id="orders_payment_retry",
    )
    def post(self, request: Request, order_id: uuid.UUID) -> Response:
        client: ApiClient = request.user
        order = _own_order(request, order_id)
        payload = _valid_body(request, OrderPaymentRetryIn)
        log_context_bind(order_id=order.pk)
        try:
            order_payment_retry(
                order=order,
                payment_method=payload.validated_data["payment_method"],
                payment_token=payload.validated_data["payment_token"],
            )
        except InvalidTransition as exc:
            raise Conflict(
                f"An order that is {exc.current} is not awaiting payment.",
                code="invalid_transition",
            ) from None
        except PaymentRetryClosed:
            raise Conflict(
                "The order's payment retry window has passed.", code="invalid_transition"
            ) from None
        try:
            pipeline.resume(order.pk)
        except Exception:
            # Committed: with the broker unreachable the stuck-order sweeper takes it up.
            logger.warning(
                "could not resume order %s after its payment retry", order.pk, exc_info=True
            )
        return Response(_order_now(client, order.pk), status=status.HTTP_202_ACCEPTED)
