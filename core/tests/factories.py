from __future__ import annotations

import factory

from core.enums import Channel
from core.models import ApiClient, ClientAPIKey

# For test clients that burst on purpose (concurrency tests, fuzzers, the live stack's
# clients): far above what they send, so their requests are still counted in Redis but
# never refused. The product defaults (20 placements/s, 100 requests/s) stay for the rest.
BURST_LIMITS = {"orders_per_second": 1000, "requests_per_second": 5000}


class ApiClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiClient

    name = factory.Sequence(lambda n: f"client-{n}")
    channel = Channel.WEB


def api_key_for(client: ApiClient) -> str:
    _, key = ClientAPIKey.objects.create_key(name=f"{client.name} key", client=client)
    return key


def metrics_auth() -> tuple[str, str]:
    """The (user, password) the test settings put /metrics behind (METRICS_BASIC_AUTH)."""
    from django.conf import settings

    user, _, password = settings.METRICS_BASIC_AUTH.partition(":")
    return user, password


def metrics_auth_header() -> dict[str, str]:
    """Django test client keyword arguments that carry the /metrics credentials."""
    import base64

    token = base64.b64encode(":".join(metrics_auth()).encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}
