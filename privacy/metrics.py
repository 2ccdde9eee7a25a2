"""`cot_pii_redactions_total{kind, cause}`: records whose personal data was redacted (an
order with every copy of its data, a prescription, an order's H1 register rows), by the
retention job or an erasure. Counted after commit, in whichever process did it."""

from __future__ import annotations

from prometheus_client import Counter

from privacy.enums import RedactionCause, RedactionKind

REDACTIONS_TOTAL = Counter(
    "cot_pii_redactions_total",
    "Records whose personal data was redacted, by kind of record and cause.",
    ["kind", "cause"],
)
for _kind in RedactionKind.values:
    for _cause in RedactionCause.values:
        # Present from the start at 0, so `increase()` sees the first redaction.
        REDACTIONS_TOTAL.labels(kind=_kind, cause=_cause)


def redactions_count(*, kind: str, cause: str, count: int = 1) -> None:
    if count:
        REDACTIONS_TOTAL.labels(kind=kind, cause=cause).inc(count)
