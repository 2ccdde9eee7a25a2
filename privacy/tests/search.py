"""Where a value is held: in a dump of the whole database (what an auditor would grep), or
in every text and JSON column the ORM knows of (inside a test's own transaction, which a
dump from another process cannot see)."""

from __future__ import annotations

import os
import re
import subprocess
from collections import defaultdict
from typing import Any

from django.apps import apps
from django.db import connection, models

COPY = re.compile(r"^COPY (?:\w+\.)?\"?(\w+)\"? ")
INSERT = re.compile(r'^INSERT INTO "?(\w+)"? ')


def database_dump() -> dict[str, list[str]]:
    """Every row of every table, as the database's own dump tool writes it (pg_dump for
    PostgreSQL, iterdump for SQLite), by table. Sees only committed rows."""
    tables: dict[str, list[str]] = defaultdict(list)
    if connection.vendor == "postgresql":
        settings = connection.settings_dict
        environment = {**os.environ, "PGPASSWORD": settings.get("PASSWORD") or ""}
        command = ["pg_dump", "--data-only", "--no-owner", "-d", settings["NAME"]]
        for option, key in (("-h", "HOST"), ("-p", "PORT"), ("-U", "USER")):
            if settings.get(key):
                command += [option, str(settings[key])]
        text = subprocess.run(
            command, env=environment, capture_output=True, text=True, check=True
        ).stdout
        table = None
        for line in text.splitlines():
            match = COPY.match(line)
            if match:
                table = match.group(1)
            elif line == "\\.":
                table = None
            elif table is not None:
                tables[table].append(line)
        return tables
    connection.ensure_connection()
    for line in connection.connection.iterdump():
        match = INSERT.match(line)
        if match:
            tables[match.group(1)].append(line)
    return tables


def tables_holding(dump: dict[str, list[str]], value: str) -> set[str]:
    return {table for table, rows in dump.items() if any(value in row for row in rows)}


def columns_holding(value: str) -> set[str]:
    """`app.Model.field` of every text or JSON column holding `value` (in this transaction)."""
    found = set()
    for model in apps.get_models():
        if model._meta.proxy:
            continue  # its table is its concrete model's, searched there
        for field in model._meta.concrete_fields:
            if isinstance(field, models.CharField | models.TextField | models.JSONField):
                lookup = {f"{field.name}__contains": value}
                if isinstance(field, models.JSONField):
                    lookup = {f"{field.name}__icontains": value}
                if model._default_manager.filter(**lookup).exists():
                    found.add(f"{model._meta.label}.{field.name}")
    return found


def snapshot() -> dict[str, Any]:
    """Every row of the apps that hold customers' data, to compare before and after."""
    labels = ("orders", "notifications", "payments", "logistics", "prescriptions", "privacy")
    return {
        model._meta.label: list(model._default_manager.order_by("pk").values())
        for model in apps.get_models()
        # A proxy's rows are its model's (the audit trail's proxy of PrivacyRequest).
        if model._meta.app_label in labels and not model._meta.proxy
    }
