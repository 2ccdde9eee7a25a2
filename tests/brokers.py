"""The broker under the live stacks of the end-to-end (and cluster) tests.

`COT_TEST_BROKER` chooses it: `redis` (default) is the test Redis with a key prefix per
stack; `amqp` is RabbitMQ (`COT_TEST_RABBITMQ_URL`, default the local server as
guest) on a vhost of the stack's own, created when the stack starts and deleted when it
stops, so runs never see each other's messages. Results, chords and breakers stay in
Redis either way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from celery import Celery

from cot_project import broker as cot_broker

RABBITMQ_URL = os.environ.get("COT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")


def broker_kind() -> str:
    kind = os.environ.get("COT_TEST_BROKER", "redis")
    if kind not in ("redis", "amqp"):
        raise ValueError(f"COT_TEST_BROKER must be redis or amqp, not {kind!r}")
    return kind


def _rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([ctl, "-q", *args], check=True, capture_output=True, timeout=60)


@dataclass
class RabbitVhost:
    name: str

    @property
    def url(self) -> str:
        return f"{RABBITMQ_URL}/{self.name}"

    def delete(self) -> None:
        _rabbitmqctl("delete_vhost", self.name)


def rabbitmq_vhost(run: str) -> RabbitVhost:
    """A new vhost `cot-<run>` on the local RabbitMQ, with all rights for its user."""
    vhost = RabbitVhost(f"cot-{run}")
    user = RABBITMQ_URL.split("://", 1)[1].split(":", 1)[0]
    _rabbitmqctl("add_vhost", vhost.name)
    _rabbitmqctl("set_permissions", "-p", vhost.name, user, ".*", ".*", ".*")
    return vhost


def stack_broker(run: str, kind: str | None = None) -> tuple[dict[str, str], Callable[[], None]]:
    """The environment a stack's processes need for its broker, and what to call when the
    stack stops."""
    if (kind or broker_kind()) == "redis":
        return {}, lambda: None
    vhost = rabbitmq_vhost(run)
    return {"TEST_BROKER_URL": vhost.url}, vhost.delete


def celery_client(env: dict[str, str]) -> Celery:
    """A Celery app on a live stack's broker and result backend (its environment), to
    hand tasks to its workers as beat or the API would."""
    from cot_project.celery import QUEUES

    redis_url = env["TEST_REDIS_URL"]
    broker_url = env.get("TEST_BROKER_URL") or redis_url
    amqp = cot_broker.is_amqp(broker_url)
    prefix = {"global_keyprefix": env["COT_REDIS_KEY_PREFIX"]}
    app = Celery("e2e-client", broker=broker_url, backend=redis_url, set_as_current=False)
    app.conf.update(
        broker_transport_options={} if amqp else prefix,
        result_backend_transport_options=prefix,
        # Declared as the workers declare them: RabbitMQ refuses a queue re-declared with
        # other arguments.
        task_queues=cot_broker.task_queues(QUEUES, amqp=amqp, delivery_limit=delivery_limit(env)),
    )
    return app


def delivery_limit(env: dict[str, str]) -> int:
    from django.conf import settings

    return int(env.get("COT_BROKER_DELIVERY_LIMIT") or settings.COT_BROKER_DELIVERY_LIMIT)
