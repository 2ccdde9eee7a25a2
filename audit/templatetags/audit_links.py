from __future__ import annotations

from django import template
from django.db import models
from django.urls import reverse
from django.utils.http import urlencode

from audit.selectors import EVENT_MODEL_BY_LABEL

register = template.Library()


@register.simple_tag(takes_context=True)
def audit_trail_url(context: template.Context, obj: models.Model | None) -> str:
    """The audit trail of `obj` for a user who may read it; empty otherwise."""
    request = context.get("request")
    if obj is None or request is None or not request.user.has_perm("audit.view_auditentry"):
        return ""
    label = obj._meta.concrete_model._meta.label_lower
    if label not in EVENT_MODEL_BY_LABEL:
        return ""
    query = urlencode({"object": f"{label}:{obj.pk}"})
    return f"{reverse('admin:audit_auditentry_changelist')}?{query}"
