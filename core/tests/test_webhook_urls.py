"""Which webhook URLs COT sends to: https to public addresses, every address checked."""

import ipaddress
import socket

import pytest

from core.webhook_urls import WebhookUrlInvalid, WebhookUrlRefused, webhook_url_check

PUBLIC = "93.184.215.14"  # an IP literal: resolving it needs no DNS


def test_https_to_a_public_address_is_allowed_and_its_addresses_returned():
    assert webhook_url_check(f"https://{PUBLIC}/hooks", allow_private=False) == [
        ipaddress.ip_address(PUBLIC)
    ]
    assert webhook_url_check("https://[2606:4700::1111]:8443/h", allow_private=False) == [
        ipaddress.ip_address("2606:4700::1111")
    ]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"http://{PUBLIC}/hooks", "must use https"),
        ("https://127.0.0.1/hooks", "loopback"),
        ("https://localhost:8443/hooks", "loopback"),
        ("https://[::1]/hooks", "loopback"),
        ("https://10.1.2.3/hooks", "private"),
        ("https://192.168.0.10/hooks", "private"),
        ("https://[fc00::1]/hooks", "private"),
        ("https://100.64.0.1/hooks", "private"),  # carrier-grade NAT: not public either
        ("https://[::ffff:10.0.0.1]/hooks", "private"),  # IPv4-mapped
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/hooks", "link-local"),
        ("https://224.0.0.1/hooks", "multicast"),
        ("https://240.0.0.1/hooks", "reserved"),
        ("https://0.0.0.0/hooks", "unspecified"),
        ("https://nothing-here.invalid/hooks", "does not resolve"),
    ],
)
def test_refused_without_private_webhooks(url, reason):
    with pytest.raises(WebhookUrlRefused, match=reason):
        webhook_url_check(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hooks",
        "http://localhost/hooks",
        "http://[::1]/",
        "https://10.1.2.3/h",
    ],
)
def test_private_webhooks_allow_http_loopback_and_private(url):
    assert webhook_url_check(url, allow_private=True)


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data", "http://0.0.0.0/", "http://224.0.0.1/"]
)
def test_link_local_multicast_and_unspecified_are_refused_even_then(url):
    with pytest.raises(WebhookUrlRefused):
        webhook_url_check(url, allow_private=True)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "not a url", "https://", "http://h:99999/"]
)
def test_what_is_no_http_url_is_invalid(url):
    with pytest.raises(WebhookUrlInvalid):
        webhook_url_check(url, allow_private=True)


def test_every_address_of_the_host_is_checked(monkeypatch):
    # A name with a public and a private address: the sender could reach either.
    def resolve(host, port, *args, **kwargs):
        assert host == "hooks.example.com"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(WebhookUrlRefused, match=r"private address \(10\.0\.0\.7\)"):
        webhook_url_check("https://hooks.example.com/h", allow_private=False)


def test_the_setting_decides_by_default(settings):
    settings.COT_ALLOW_PRIVATE_WEBHOOKS = False
    with pytest.raises(WebhookUrlRefused):
        webhook_url_check("http://127.0.0.1:8000/hooks")
    settings.COT_ALLOW_PRIVATE_WEBHOOKS = True
    assert webhook_url_check("http://127.0.0.1:8000/hooks")
