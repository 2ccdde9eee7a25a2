from __future__ import annotations

from core.management.commands.rotate_api_key import RotateCommand
from core.services import webhook_secret_rotate


class Command(RotateCommand):
    help = (
        "Give a client a new webhook signing secret and print it (shown once). For "
        "--grace-hours (default 24; 0: none) every delivery is signed with both: "
        "X-COT-Signature: sha256=<new>,sha256=<old>."
    )
    rotate = staticmethod(webhook_secret_rotate)
