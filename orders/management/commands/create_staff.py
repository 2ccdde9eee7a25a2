from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from orders.roles import ROLES, roles_sync


class Command(BaseCommand):
    help = "Create a staff user in a role's group and print a generated password."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)

    def handle(self, *args: Any, username: str, role: str, **options: Any) -> None:
        if User.objects.filter(username=username).exists():
            raise CommandError(f"a user named {username!r} exists already")
        roles_sync()
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = User.objects.create_user(username=username, password=password, is_staff=True)
            user.groups.add(Group.objects.get(name=role))
        self.stdout.write(password)
