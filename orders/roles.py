"""Staff roles: a group per role with exactly the permissions its work needs."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission

# (app_label, model) -> actions
ROLE_PERMISSIONS: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {
    "pharmacist": {
        ("prescriptions", "prescription"): ("view", "change", "review"),
        ("prescriptions", "prescriptionitem"): ("view",),
        ("prescriptions", "dispensation"): ("view",),
        ("prescriptions", "h1registerentry"): ("view",),
        ("orders", "order"): ("view",),
        ("orders", "orderline"): ("view",),
        ("orders", "orderevent"): ("view",),
        ("inventory", "product"): ("view",),
    },
    "ops": {
        ("orders", "order"): ("view", "change"),
        ("orders", "orderline"): ("view",),
        ("orders", "orderevent"): ("view",),
        ("orders", "orderstep"): ("view",),
        # Returns: approve, reject and receive are changes (admin actions).
        ("orders", "return"): ("view", "change"),
        ("orders", "returnline"): ("view",),
        ("payments", "payment"): ("view", "refund"),
        ("payments", "paymentattempt"): ("view",),
        ("logistics", "shipment"): ("view", "move"),
        ("logistics", "shipmentitem"): ("view",),
        ("logistics", "shipmentattempt"): ("view",),
        ("notifications", "notification"): ("view", "resend"),
        ("notifications", "notificationtemplate"): ("view", "change"),
        ("notifications", "webhookdelivery"): ("view", "resend"),
        ("notifications", "webhookattempt"): ("view",),
        ("inventory", "product"): ("view",),
        ("inventory", "stockbatch"): ("view",),
        ("inventory", "fulfillmentcenter"): ("view",),
        ("inventory", "reservation"): ("view",),
        ("inventory", "stocklevel"): ("view",),
        ("inventory", "stockreturn"): ("view",),
        ("inventory", "stockwriteoff"): ("view",),
        ("prescriptions", "prescription"): ("view",),
        ("prescriptions", "h1registerentry"): ("view",),
        # The audit trail of staff changes (read-only for everyone).
        ("audit", "auditentry"): ("view",),
        # A customer's data rights: export it, erase it (admin, "Customer data").
        ("privacy", "privacyrequest"): ("view", "export", "erase"),
    },
    "inventory": {
        ("inventory", "product"): ("view", "add", "change"),
        ("inventory", "fulfillmentcenter"): ("view", "add", "change"),
        ("inventory", "stockbatch"): ("view", "add", "change"),
        ("inventory", "stocklevel"): ("view",),
        ("inventory", "reservation"): ("view",),
        ("inventory", "stockreturn"): ("view",),
        ("inventory", "stockwriteoff"): ("view",),
        # Demand forecasts and replenishment (the forecasting app).
        ("forecasting", "replenishment"): ("view",),
        ("forecasting", "forecastrun"): ("view",),
        ("forecasting", "centerreplenishmentsettings"): ("view", "add", "change"),
    },
}
ROLES = tuple(ROLE_PERMISSIONS)


def roles_sync(**kwargs: Any) -> None:
    """Create or update the role groups (run after every migrate)."""
    for role, grants in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for (app_label, model), actions in grants.items():
            codenames = [f"{action}_{model}" for action in actions]
            wanted += list(
                Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
            )
        group.permissions.set(wanted)
