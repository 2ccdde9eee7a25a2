"""Prescriptions: the Rx rules the pipeline applies, the pharmacist's review, and the
quantities each order claims."""

from __future__ import annotations

import datetime
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import django.dispatch
import filetype
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files import File
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from core.models import ApiClient
from inventory.enums import PRESCRIPTION_SCHEDULES, Schedule
from prescriptions.enums import (
    CheckResult,
    H1EntryType,
    LineDecision,
    LineRejection,
    PrescriptionStatus,
)
from prescriptions.metrics import rx_review_observed
from prescriptions.models import (
    Dispensation,
    DispensationGiveBack,
    H1RegisterEntry,
    Prescription,
    PrescriptionItem,
)
from prescriptions.signals import prescription_reviewed


@dataclass(frozen=True)
class RxLine:
    sku: str
    quantity: int
    schedule: str


def _validity_days(schedule: str) -> int:
    """Days a prescription is good for a line of this schedule: H1 drugs (antibiotics,
    habit-forming drugs) are held to a shorter window than the rest of Schedule H."""
    if schedule == Schedule.H1:
        return settings.COT_PRESCRIPTION_VALIDITY_DAYS_H1
    return settings.COT_PRESCRIPTION_VALIDITY_DAYS


def _orders_drawing_on(prescription_id: uuid.UUID, *, other_than: uuid.UUID | None = None) -> int:
    """How many orders hold a dispensation on the prescription that is not fully given
    back (a cancelled, failed or returned order no longer does)."""
    live = Dispensation.objects.filter(item__prescription_id=prescription_id, returned=False)
    if other_than is not None:
        live = live.exclude(order_id=other_than)
    return live.values("order_id").distinct().count()


def _rx_line_verdicts(
    *,
    client_id: int,
    customer_id: str,
    prescription_id: uuid.UUID | None,
    rx_lines: list[RxLine],
    ordered_on: datetime.date,
    validity_days: Callable[[RxLine], int],
) -> tuple[dict[str, CheckResult], bool]:
    """Each Rx line's verdict before `max_dispenses` is counted, and whether the
    prescription already serves as many orders as it may (a failure of every Rx line
    that passed its own checks: the line's own failure comes first)."""
    if prescription_id is None:
        return dict.fromkeys((l.sku for l in rx_lines), CheckResult.PRESCRIPTION_REQUIRED), False
    # Filtered by client in the query: another client's prescription looks exactly like
    # one that does not exist, so its existence never leaks.
    prescription = Prescription.objects.filter(pk=prescription_id, client_id=client_id).first()
    wide = None
    if prescription is None or prescription.customer_id != customer_id:
        wide = CheckResult.PRESCRIPTION_INVALID
    elif prescription.status == PrescriptionStatus.REJECTED:
        wide = CheckResult.PRESCRIPTION_REJECTED
    elif prescription.issued_on > ordered_on:
        wide = CheckResult.PRESCRIPTION_INVALID
    if wide is not None:
        return dict.fromkeys((l.sku for l in rx_lines), wide), False
    assert prescription is not None
    items = PrescriptionItem.objects.filter(prescription_id=prescription_id)
    remaining, rejected = {}, set()
    for sku, quantity, dispensed, decision in items.values_list(
        "sku", "quantity", "dispensed_quantity", "decision"
    ):
        remaining[sku] = quantity - dispensed
        if decision == LineDecision.REJECTED:
            rejected.add(sku)
    passed = CheckResult.ON_HOLD
    if prescription.status != PrescriptionStatus.PENDING_REVIEW:
        passed = CheckResult.OK
    verdicts: dict[str, CheckResult] = {}
    for line in rx_lines:
        validity = datetime.timedelta(days=validity_days(line))
        if prescription.issued_on < ordered_on - validity:
            verdicts[line.sku] = CheckResult.PRESCRIPTION_EXPIRED
        elif line.sku in rejected:
            # The pharmacist struck this line out: as if the prescription did not name it,
            # for the pharmacist's reason.
            verdicts[line.sku] = CheckResult.PRESCRIPTION_REJECTED
        elif line.sku not in remaining:
            verdicts[line.sku] = CheckResult.PRESCRIPTION_INVALID
        elif remaining[line.sku] < line.quantity:
            verdicts[line.sku] = CheckResult.PRESCRIPTION_QUANTITY_EXCEEDED
        else:
            verdicts[line.sku] = passed
    over_limit = (
        prescription.max_dispenses is not None
        and _orders_drawing_on(prescription.pk) >= prescription.max_dispenses
    )
    return verdicts, over_limit


def _split(lines: list[RxLine]) -> tuple[list[RxLine], dict[str, CheckResult]]:
    """The Rx lines, and the verdicts of the others (schedule x never online, OTC fine)."""
    others = {
        line.sku: CheckResult.NOT_SELLABLE_ONLINE if line.schedule == Schedule.X else CheckResult.OK
        for line in lines
        if line.schedule not in PRESCRIPTION_SCHEDULES
    }
    return [line for line in lines if line.schedule in PRESCRIPTION_SCHEDULES], others


PASSING = frozenset({CheckResult.OK, CheckResult.ON_HOLD})


def prescription_check_lines(
    *,
    client_id: int,
    customer_id: str,
    prescription_id: uuid.UUID | None,
    lines: list[RxLine],
    ordered_on: datetime.date,
) -> dict[str, CheckResult]:
    """Each line's verdict under this prescription, in line order: OK, ON_HOLD (waits for
    the pharmacist) or the rule it fails. Pure read.

    OTC lines are OK and schedule x lines `not_sellable_online`; a fault of the
    prescription itself (none, another client's or customer's, rejected, future-dated,
    serving `max_dispenses` orders) fails every Rx line; each Rx line is held to its own
    schedule's validity window and to what the prescription says of its SKU."""
    rx_lines, verdicts = _split(lines)
    if rx_lines:
        rx_verdicts, over_limit = _rx_line_verdicts(
            client_id=client_id,
            customer_id=customer_id,
            prescription_id=prescription_id,
            rx_lines=rx_lines,
            ordered_on=ordered_on,
            validity_days=lambda line: _validity_days(line.schedule),
        )
        if over_limit:
            rx_verdicts = {
                sku: CheckResult.PRESCRIPTION_QUANTITY_EXCEEDED if v in PASSING else v
                for sku, v in rx_verdicts.items()
            }
        verdicts.update(rx_verdicts)
    return {line.sku: verdicts[line.sku] for line in lines}


def prescription_check(
    *,
    client_id: int,
    customer_id: str,
    prescription_id: uuid.UUID | None,
    lines: list[RxLine],
    ordered_on: datetime.date,
) -> CheckResult:
    """Decide whether these lines may be sold under this prescription, all together.
    Pure read.

    Only the client that uploaded the prescription may draw on it: anyone else's is
    `prescription_invalid`, as if it did not exist. The validity window is the shortest
    of the Rx lines' schedules (`COT_PRESCRIPTION_VALIDITY_DAYS`, `..._H1`), and a
    prescription with `max_dispenses` serves at most that many orders at once."""
    rx_lines, others = _split(lines)
    if CheckResult.NOT_SELLABLE_ONLINE in others.values():
        return CheckResult.NOT_SELLABLE_ONLINE
    if not rx_lines:
        return CheckResult.OK
    shortest = min(_validity_days(line.schedule) for line in rx_lines)
    verdicts, over_limit = _rx_line_verdicts(
        client_id=client_id,
        customer_id=customer_id,
        prescription_id=prescription_id,
        rx_lines=rx_lines,
        ordered_on=ordered_on,
        validity_days=lambda line: shortest,
    )
    failure = next((v for v in verdicts.values() if v not in PASSING), None)
    if failure is not None:
        return failure
    if over_limit:
        return CheckResult.PRESCRIPTION_QUANTITY_EXCEEDED
    if CheckResult.ON_HOLD in verdicts.values():
        return CheckResult.ON_HOLD
    return CheckResult.OK


class AlreadyReviewed(Exception):
    """The prescription was approved or rejected before."""


@dataclass(frozen=True)
class RxItemRequest:
    sku: str
    quantity: int


def prescription_create(
    *,
    client: ApiClient,
    customer_id: str,
    patient_name: str,
    doctor_name: str,
    doctor_registration_no: str,
    issued_on: datetime.date,
    items: list[RxItemRequest],
    image: File | None = None,
    max_dispenses: int | None = None,
) -> Prescription:
    with transaction.atomic():
        prescription = Prescription(
            client=client,
            customer_id=customer_id,
            patient_name=patient_name,
            doctor_name=doctor_name,
            doctor_registration_no=doctor_registration_no,
            issued_on=issued_on,
            max_dispenses=max_dispenses,
        )
        if image is not None:
            # Stored under a generated name: the client's file name is never trusted.
            extension = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}
            kind = filetype.guess_mime(image.read(2048))
            image.seek(0)
            prescription.image.save(f"{prescription.id}.{extension[kind]}", image, save=False)
        prescription.save()
        PrescriptionItem.objects.bulk_create(
            PrescriptionItem(prescription=prescription, sku=i.sku, quantity=i.quantity)
            for i in items
        )
    return prescription


class UnknownLine(Exception):
    """A review names a SKU the prescription does not have."""

    def __init__(self, sku: str) -> None:
        super().__init__(f"the prescription has no line {sku}")
        self.sku = sku


# What a prescription-wide decision means for its lines; "partial" takes them one by one.
PARTIAL = "partial"
DECISIONS = (PrescriptionStatus.APPROVED, PrescriptionStatus.REJECTED, PARTIAL)


# A review line's decision offering a substitute for the line in one order: the
# prescription's line counts as approved (for that order and any other).
SUBSTITUTE = "substitute"


@dataclass(frozen=True)
class LineReview:
    sku: str
    decision: str  # LineDecision.APPROVED or REJECTED, or SUBSTITUTE
    reason: str = ""  # a LineRejection, required when rejected
    substitute_sku: str = ""  # SUBSTITUTE only: what to offer instead
    order_id: uuid.UUID | None = None  # SUBSTITUTE only: the order whose line it is for


class InvalidSubstitute(Exception):
    """A substitute offer that cannot be made: another composition, no sellable stock,
    an unknown order or sku, or an order not waiting on this prescription."""


# Sent inside the review's transaction (before it commits) with `prescription_id` and
# `offers` (the SUBSTITUTE LineReviews). `orders` records the offers; a receiver raising
# InvalidSubstitute rolls the whole review back. Prescriptions never imports orders.
substitutions_offered = django.dispatch.Signal()


@dataclass(frozen=True)
class SubstitutionTarget:
    """An order line waiting on a prescription, which a substitute could be offered for."""

    order_id: uuid.UUID
    order_number: str
    sku: str
    quantity: int
    pincode: str
    # An in-store pickup order's centre: substitutes come from its stock (pincode is "").
    center: str = ""


# Sent with `prescription_id`; `orders` answers with the SubstitutionTargets of the orders
# on hold waiting on it (the review page lists the substitutes each could get).
substitution_targets_wanted = django.dispatch.Signal()


def prescription_substitution_targets(*, prescription_id: uuid.UUID) -> list[SubstitutionTarget]:
    """The order lines waiting on this prescription that a substitute could be offered for."""
    answers = substitution_targets_wanted.send(sender=Prescription, prescription_id=prescription_id)
    return [target for _, targets in answers for target in targets or ()]


def _line_decisions(
    items: dict[str, PrescriptionItem], decision: str, lines: Sequence[LineReview]
) -> dict[str, tuple[str, str]]:
    """sku -> (decision, reason) for every line of the prescription. Raises UnknownLine or
    ValueError for a review that does not fit it."""
    given: dict[str, LineReview] = {}
    for line in lines:
        if line.sku not in items:
            raise UnknownLine(line.sku)
        if line.sku in given:
            raise ValueError(f"line {line.sku} is decided twice")
        if line.decision == SUBSTITUTE:
            if not line.substitute_sku or line.order_id is None:
                raise InvalidSubstitute(f"line {line.sku}: name the substitute and the order")
            line = LineReview(sku=line.sku, decision=LineDecision.APPROVED)
        elif line.decision not in (LineDecision.APPROVED, LineDecision.REJECTED):
            raise ValueError(f"not a line decision: {line.decision}")
        if line.decision == LineDecision.REJECTED and line.reason not in LineRejection.values:
            raise ValueError(f"line {line.sku}: say why it is rejected")
        given[line.sku] = line
    if decision == PARTIAL:
        # Unlisted lines are approved: the pharmacist names what is wrong.
        return {
            sku: (given[sku].decision, given[sku].reason)
            if sku in given
            else (LineDecision.APPROVED, "")
            for sku in items
        }
    if given and any(line.decision != decision for line in given.values()):
        raise ValueError(f"a {decision} prescription cannot have lines decided otherwise")
    reason = LineRejection.OTHER if decision == PrescriptionStatus.REJECTED else ""
    return {
        sku: (decision, given[sku].reason or reason if sku in given else reason) for sku in items
    }


def prescription_review(
    *,
    prescription_id: uuid.UUID,
    reviewer: User,
    decision: str,
    note: str = "",
    lines: Sequence[LineReview] = (),
) -> Prescription:
    """Record a pharmacist's decision once; every order waiting on it then resumes.

    `decision` is `approved` or `rejected` (every line so), or `partial`: each line in
    `lines` approved or rejected with a reason, the others approved. A rejected line is as
    if the prescription did not name it; a partial review with every line rejected is a
    rejection. Raises AlreadyReviewed when it was decided before (two pharmacists at once:
    one decides, the other is told), UnknownLine, ValueError, Prescription.DoesNotExist;
    nothing is written then."""
    if decision not in DECISIONS:
        raise ValueError(f"not a decision: {decision}")
    with transaction.atomic():
        # The row lock orders two reviews of one prescription: the second finds it decided.
        prescription = Prescription.objects.select_for_update().get(pk=prescription_id)
        if prescription.status != PrescriptionStatus.PENDING_REVIEW:
            raise AlreadyReviewed(str(prescription_id))
        items = {item.sku: item for item in prescription.items.order_by("pk")}
        per_line = _line_decisions(items, decision, lines)
        approved = any(d == LineDecision.APPROVED for d, _ in per_line.values())
        status = PrescriptionStatus.APPROVED if approved else PrescriptionStatus.REJECTED
        now = timezone.now()
        for sku, (line_decision, reason) in per_line.items():
            PrescriptionItem.objects.filter(pk=items[sku].pk).update(
                decision=line_decision, rejection_reason=reason
            )
        Prescription.objects.filter(pk=prescription.pk).update(
            status=status,
            reviewed_by=reviewer,
            reviewed_at=now,
            review_note=note,
            claimed_by=None,
            claimed_at=None,
            updated_at=now,
        )
        prescription.refresh_from_db()
        # Before the waiting orders resume: the wait is measured from their hold.
        offers = [line for line in lines if line.decision == SUBSTITUTE]
        if offers:
            answers = substitutions_offered.send(
                sender=Prescription, prescription_id=prescription.pk, offers=offers
            )
            # Nobody recorded them (orders not listening): no offer is silently lost.
            if not any(recorded for _, recorded in answers):
                raise InvalidSubstitute("substitutions cannot be offered")
        rx_review_observed(prescription)
        transaction.on_commit(
            lambda: prescription_reviewed.send(
                sender=Prescription, prescription_id=prescription.pk, status=status
            )
        )
    return prescription


def prescription_dispense(
    *, order_id: uuid.UUID, prescription_id: uuid.UUID, lines: list[RxItemRequest]
) -> bool:
    """Claim the lines' quantities from the prescription for this order, all or nothing.

    Idempotent per order. Two orders racing for the last remaining quantity never both get
    it: each claim is a conditional UPDATE (dispensed + q <= quantity). Nor do they both
    get the last of `max_dispenses`: the prescription row is locked first, so claims on
    one prescription count the orders drawing on it one at a time. Returns False, with
    nothing claimed, when any line is not covered or the prescription serves as many
    orders as it may."""
    with transaction.atomic():
        # Locked before its items, as prescription_review does, so the two never deadlock.
        prescription = Prescription.objects.select_for_update().filter(pk=prescription_id).first()
        if prescription is None:
            return False
        items = {
            item.sku: item
            for item in PrescriptionItem.objects.select_for_update()
            .filter(prescription_id=prescription_id, sku__in=[line.sku for line in lines])
            .order_by("pk")
        }
        if Dispensation.objects.filter(order_id=order_id, returned=False).exists():
            return True
        if (
            prescription.max_dispenses is not None
            and _orders_drawing_on(prescription_id, other_than=order_id)
            >= prescription.max_dispenses
        ):
            return False
        for line in lines:
            item = items.get(line.sku)
            if item is None:
                transaction.set_rollback(True)
                return False
            claimed = PrescriptionItem.objects.filter(
                pk=item.pk, dispensed_quantity__lte=F("quantity") - line.quantity
            ).update(dispensed_quantity=F("dispensed_quantity") + line.quantity)
            if not claimed:
                transaction.set_rollback(True)
                return False
            Dispensation.objects.create(order_id=order_id, item=item, quantity=line.quantity)
    return True


def prescription_return(*, order_id: uuid.UUID) -> int:
    """Give back whatever an order still claims (cancelled or failed): units already given
    back by `prescription_units_returned` are not given back twice. Idempotent. Returns
    the number of dispensations given back."""
    returned = 0
    with transaction.atomic():
        for dispensation in (
            Dispensation.objects.select_for_update()
            .filter(order_id=order_id, returned=False)
            .order_by("item_id")
        ):
            PrescriptionItem.objects.filter(pk=dispensation.item_id).update(
                dispensed_quantity=F("dispensed_quantity") - dispensation.claimed
            )
            dispensation.returned_quantity = dispensation.quantity
            dispensation.returned = True
            dispensation.save(update_fields=["returned_quantity", "returned", "updated_at"])
            returned += 1
    return returned


@dataclass(frozen=True)
class ReturnedUnit:
    """Units of one sku and batch that came back from a confirmed or delivered order."""

    sku: str
    batch: str
    quantity: int

    def __post_init__(self) -> None:
        # A non-positive quantity would claim units instead of giving them back.
        if self.quantity <= 0:
            raise ValueError(f"returned quantity must be positive: {self.quantity}")


def prescription_units_returned(
    *, order_id: uuid.UUID, order_number: str, reference: str, lines: list[ReturnedUnit]
) -> int:
    """Give units that came back (`reference` names the event, e.g. `rto:<shipment id>`)
    back to the order's prescription, and write the Schedule H1 register's `returned` rows
    beside the original ones, in one transaction.

    A dispensation gives back at most what it still claims, so the prescription item never
    goes below zero; skus the order did not dispense against a prescription (OTC) are
    skipped. Idempotent per reference: a replay changes nothing. Returns the units given
    back to the prescription."""
    per_sku: dict[str, int] = defaultdict(int)
    per_batch: dict[tuple[str, str], int] = defaultdict(int)
    for line in lines:
        per_sku[line.sku] += line.quantity
        per_batch[(line.sku, line.batch)] += line.quantity
    given_back = 0
    with transaction.atomic():
        # Locks the dispensations and their items in the order prescription_return does.
        dispensations = list(
            Dispensation.objects.select_for_update()
            .select_related("item")
            .filter(order_id=order_id, item__sku__in=per_sku, returned=False)
            .order_by("item_id")
        )
        # Read under the locks, so a concurrent replay of the same event finds our rows.
        replayed = set(
            DispensationGiveBack.objects.filter(
                reference=reference, dispensation__in=dispensations
            ).values_list("dispensation_id", flat=True)
        )
        for dispensation in dispensations:
            if dispensation.pk in replayed:
                continue
            item = dispensation.item
            quantity = min(per_sku[item.sku], dispensation.claimed, item.dispensed_quantity)
            if quantity <= 0:
                continue
            per_sku[item.sku] -= quantity
            PrescriptionItem.objects.filter(pk=item.pk).update(
                dispensed_quantity=F("dispensed_quantity") - quantity
            )
            dispensation.returned_quantity += quantity
            dispensation.returned = dispensation.claimed == 0
            dispensation.save(update_fields=["returned_quantity", "returned", "updated_at"])
            DispensationGiveBack.objects.create(
                reference=reference, dispensation=dispensation, quantity=quantity
            )
            given_back += quantity
        for (sku, batch), quantity in sorted(per_batch.items()):
            _h1_register_record_return(
                order_id=order_id,
                order_number=order_number,
                reference=reference,
                sku=sku,
                batch=batch,
                quantity=quantity,
            )
    return given_back


def _h1_register_record_return(
    *, order_id: uuid.UUID, order_number: str, reference: str, sku: str, batch: str, quantity: int
) -> None:
    """Write the `returned` row beside the order's H1 row for this batch, if it has one; the
    register is append-only, so the original row is never edited."""
    line = H1RegisterEntry.objects.filter(order_id=order_id, sku=sku, batch=batch)
    # Locking the original row serialises return events for the same batch.
    original = (
        line.select_for_update().filter(entry_type=H1EntryType.DISPENSED).order_by("pk").first()
    )
    if original is None:
        return
    returns = line.filter(entry_type=H1EntryType.RETURNED)
    if returns.filter(reference=reference).exists():
        return
    already_returned = returns.aggregate(total=Sum("quantity"))["total"] or 0
    quantity = min(quantity, original.quantity - already_returned)
    if quantity <= 0:
        return
    H1RegisterEntry.objects.create(
        order_id=order_id,
        order_number=order_number,
        prescription_id=original.prescription_id,
        patient_name=original.patient_name,
        doctor_name=original.doctor_name,
        doctor_registration_no=original.doctor_registration_no,
        sku=sku,
        drug_name=original.drug_name,
        batch=batch,
        quantity=quantity,
        entry_type=H1EntryType.RETURNED,
        reference=reference,
    )


@dataclass(frozen=True)
class H1Line:
    sku: str
    drug_name: str
    batch: str
    quantity: int


def h1_register_record(
    *, order_id: uuid.UUID, order_number: str, prescription_id: uuid.UUID, lines: list[H1Line]
) -> int:
    """Write the Schedule H1 register rows of a confirmed order. Idempotent."""
    prescription = Prescription.objects.get(pk=prescription_id)
    entries = [
        H1RegisterEntry(
            order_id=order_id,
            order_number=order_number,
            prescription=prescription,
            patient_name=prescription.patient_name,
            doctor_name=prescription.doctor_name,
            doctor_registration_no=prescription.doctor_registration_no,
            sku=line.sku,
            drug_name=line.drug_name,
            batch=line.batch,
            quantity=line.quantity,
        )
        for line in lines
    ]
    return len(H1RegisterEntry.objects.bulk_create(entries, ignore_conflicts=True))


def _claim_is_stale_before(now: datetime.datetime) -> datetime.datetime:
    return now - datetime.timedelta(seconds=settings.COT_REVIEW_SLA_SECONDS)


def prescription_claim(*, prescription_id: uuid.UUID, user: User) -> bool:
    """Mark a pending prescription as being reviewed by `user`, so that two pharmacists do
    not review it at once. A compare-and-set: it succeeds when nobody holds it, when `user`
    already does (the claim is renewed), or when the claim is older than
    COT_REVIEW_SLA_SECONDS (its holder is taken to have walked away). Returns False, with
    nothing changed, when another pharmacist holds it or it is no longer pending."""
    now = timezone.now()
    free = (
        Q(claimed_by__isnull=True)
        | Q(claimed_by=user)
        | Q(claimed_at__lt=_claim_is_stale_before(now))
    )
    claimed = (
        Prescription.objects.filter(pk=prescription_id, status=PrescriptionStatus.PENDING_REVIEW)
        .filter(free)
        .update(claimed_by=user, claimed_at=now, updated_at=now)
    )
    return claimed == 1


def prescription_unclaim(*, prescription_id: uuid.UUID, user: User) -> bool:
    """Give back `user`'s claim on a prescription. Only its holder releases a claim (another
    pharmacist takes over a stale one with `prescription_claim`). Returns False when `user`
    did not hold it."""
    now = timezone.now()
    released = Prescription.objects.filter(pk=prescription_id, claimed_by=user).update(
        claimed_by=None, claimed_at=None, updated_at=now
    )
    return released == 1
