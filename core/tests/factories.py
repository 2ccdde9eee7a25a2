from __future__ import annotations

import factory

from core.enums import Channel
from core.models import ApiClient, ClientAPIKey


class ApiClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiClient

    name = factory.Sequence(lambda n: f"client-{n}")
    channel = Channel.WEB


def api_key_for(client: ApiClient) -> str:
    _, key = ClientAPIKey.objects.create_key(name=f"{client.name} key", client=client)
    return key
