"""The audit trail in admin: the whole trail with filters (model, user, date) and its CSV
export, and each audited object's own trail. Read-only for everyone, superusers too."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from audit.models import SHOWN_LABELS, AuditEntry
from audit.selectors import (
    EVENT_MODEL_BY_LABEL,
    audit_entries,
    audit_trail_available,
    audited_model,
    changes_describe,
    object_model_label,
)
from core.admin import ReadOnlyAdminMixin

AUDITOR_PERMISSION = "audit.view_auditentry"


class AuditedModelFilter(admin.SimpleListFilter):
    title = "model"
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return sorted(
            (label, audited_model(event)._meta.verbose_name.capitalize())
            for label, event in EVENT_MODEL_BY_LABEL.items()
        )

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        # The model is chosen in get_queryset, where the trail's tables are picked.
        return queryset


class ObjectFilter(admin.SimpleListFilter):
    """One object's trail (`?object=orders.order:<pk>`), linked from its change page."""

    title = "object"
    parameter_name = "object"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        value = request.GET.get(self.parameter_name)
        return [(value, value)] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset


class StaffUserFilter(admin.SimpleListFilter):
    title = "user"
    parameter_name = "username"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        names = (
            get_user_model()
            .objects.filter(is_staff=True)
            .order_by("username")
            .values_list("username", flat=True)
        )
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(username=self.value()) if self.value() else queryset


class LabelFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [(label, label) for label in SHOWN_LABELS]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(pgh_label=self.value()) if self.value() else queryset


def _scope(request: HttpRequest) -> tuple[str | None, str | None]:
    """(model label, object id) that the request's filters ask for; unknown ones ignored."""
    obj = request.GET.get(ObjectFilter.parameter_name, "")
    label, _, object_id = obj.partition(":")
    if label in EVENT_MODEL_BY_LABEL and object_id:
        return label, object_id
    label = request.GET.get(AuditedModelFilter.parameter_name)
    return (label if label in EVENT_MODEL_BY_LABEL else None), None


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("pgh_created_at", "username", "object_link", "pgh_label", "reason", "changes")
    list_display_links = None
    list_filter = (
        AuditedModelFilter,
        StaffUserFilter,
        ("pgh_created_at", admin.DateFieldListFilter),
        LabelFilter,
        ObjectFilter,
    )
    ordering = ("-pgh_created_at", "-pgh_id")
    list_per_page = 50
    actions = None

    # Nobody adds, changes or deletes audit rows, superusers included.
    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_active and request.user.has_perm(AUDITOR_PERMISSION)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        label, object_id = _scope(request)
        return audit_entries(label=label, object_id=object_id)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not audit_trail_available():
            self.message_user(
                request,
                "The audit trail is recorded on PostgreSQL only; this database has none.",
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        export = path(
            "export/",
            self.admin_site.admin_view(self.export_view),
            name="audit_auditentry_export",
        )
        return [export, *super().get_urls()]

    @admin.display(description="object")
    def object_link(self, entry: AuditEntry) -> str:
        label = object_model_label(entry)
        model = audited_model(EVENT_MODEL_BY_LABEL[label])
        trail = reverse("admin:audit_auditentry_changelist")
        return format_html(
            '<a href="{}?object={}:{}">{} {}</a>',
            trail,
            label,
            entry.pgh_obj_id,
            model._meta.verbose_name,
            entry.pgh_obj_id,
        )

    @admin.display(description="before → after")
    def changes(self, entry: AuditEntry) -> str:
        return format_html_join(
            "",
            "<div><code>{}</code>: {} → {}</div>",
            (
                (field, _shown(before), _shown(after))
                for field, before, after in changes_describe(entry)
            ),
        )

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """The list as filtered, every page of it, as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        entries = changelist.get_queryset(request)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(_csv_rows(entries), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="audit-trail-{stamp}.csv"'
        return response


def _shown(value: Any) -> str:
    return "—" if value in (None, "") else str(value)


class _Echo:
    def write(self, value: str) -> str:
        return value


CSV_HEADER = ("at", "user", "user_id", "model", "object_id", "kind", "action", "reason", "url")


def _csv_rows(entries: QuerySet) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow((*CSV_HEADER, "field", "before", "after"))
    for entry in entries:
        row = (
            entry.pgh_created_at.isoformat(),
            _csv_value(entry.username),
            _csv_value(entry.user_id),
            object_model_label(entry),
            _csv_value(entry.pgh_obj_id),
            entry.pgh_label,
            _csv_value(entry.action),
            _csv_value(entry.reason),
            _csv_value(entry.url),
        )
        changes = list(changes_describe(entry))
        # One line per changed field, so a spreadsheet filters on a field's history.
        for field, before, after in changes or [("", "", "")]:
            yield writer.writerow((*row, field, _csv_value(before), _csv_value(after)))


def _csv_value(value: Any) -> str:
    text = "" if value is None else str(value)
    # Typed text that a spreadsheet would run as a formula is kept as text.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text
