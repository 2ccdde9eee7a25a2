"""Where COT may send a client's webhooks: an `https` URL whose host resolves only to
public addresses (`COT_ALLOW_PRIVATE_WEBHOOKS` also allows `http` and loopback or private
addresses, for a receiver on the same machine or network).

Checked when a client's URL is set (`create_api_client`, admin) and again before every
delivery, because what a name resolves to may change after it was checked; the sender
then connects to the address checked here (notifications.services.webhooks)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_url_shape = URLValidator(schemes=["http", "https"])


class WebhookUrlInvalid(ValueError):
    """Not an http(s) URL with a host: no attempt can ever succeed."""


class WebhookUrlRefused(ValueError):
    """A URL COT will not send to as things stand (its scheme here, or what its host
    resolves to now): a later attempt may succeed once the URL or its DNS changes."""


def _address_refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why COT does not send to `address`, or None. Link-local (cloud metadata services
    live there), multicast, reserved and unspecified addresses are refused even when
    private ones are allowed."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.1 reaches 10.0.0.1
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_link_local:
        return "link-local"
    if address.is_loopback:  # before reserved: ::1 lies in IPv6's reserved ::/8
        return None if allow_private else "loopback"
    if address.is_reserved:
        return "reserved"
    if address.is_private or not address.is_global:
        return None if allow_private else "private"
    return None


def webhook_url_check(url: str, *, allow_private: bool | None = None) -> list[IPAddress]:
    """Check `url` as a webhook target now and return every address its host resolves to
    (all of them allowed), in the resolver's order. Raises `WebhookUrlInvalid` or
    `WebhookUrlRefused` with a message fit for the person who set the URL."""
    if allow_private is None:
        allow_private = settings.COT_ALLOW_PRIVATE_WEBHOOKS
    try:
        _url_shape(url)
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except (ValidationError, ValueError):
        raise WebhookUrlInvalid(f"not an http(s) URL: {url[:200]!r}") from None
    host = parts.hostname or ""
    if parts.scheme != "https" and not allow_private:
        raise WebhookUrlRefused("the webhook URL must use https")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookUrlRefused(f"the host {host!r} does not resolve ({exc})") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in found:
        # An IPv6 sockaddr may carry a zone ("fe80::1%eth0"): link-local, refused below.
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        refusal = _address_refusal(address, allow_private=allow_private)
        if refusal is not None:
            raise WebhookUrlRefused(
                f"the host {host!r} resolves to a {refusal} address ({address}); "
                "webhooks go only to public addresses"
            )
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise WebhookUrlRefused(f"the host {host!r} does not resolve")
    return addresses
