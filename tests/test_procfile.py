"""The Procfile's process roles (docs/OPERATIONS.md): every task queue has exactly one
worker role, each role names itself, and there is exactly one beat."""

from __future__ import annotations

import re

from conftest import ROOT
from cot_project.celery import QUEUES


def roles() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_each_queue_has_one_worker_role_and_there_is_one_beat():
    procs = roles()
    workers = {name: command for name, command in procs.items() if " worker " in command}
    consumed = [
        q for command in workers.values() for q in re.search(r"-Q (\S+)", command)[1].split(",")
    ]
    assert sorted(consumed) == sorted(QUEUES)
    assert set(workers) == {
        "worker-pipeline",
        "worker-payments",
        "worker-notifications",
        "worker-maintenance",
    }
    # Distinct node names, so Flower and `celery inspect` tell them apart.
    assert len({re.search(r"-n (\S+)", c)[1] for c in workers.values()}) == len(workers)
    assert [name for name, command in procs.items() if " beat " in command] == ["beat"]
    assert {"web", "flower", "simulator"} <= set(procs)
