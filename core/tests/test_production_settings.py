"""Production settings: Django's deployment checks pass with a production-like
environment, the DEV-ONLY secrets are refused at startup, and the browser protections
(https redirect, HSTS, secure cookies, Content-Security-Policy) are on."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("DJANGO_SECRET_KEY", "PAYMENTS_WEBHOOK_SECRET", "LOGISTICS_WEBHOOK_SECRET")


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`python ARGS` in a fresh process with the production settings module, and nothing
    from this shell's DJANGO_*/COT_*/secret variables unless given."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "COT_", "FLOWER_", "METRICS_"))
        and k not in SECRETS
        and k != "DATABASE_URL"
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "cot_project.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _production_env() -> dict[str, str]:
    return {
        **{name: secrets.token_urlsafe(48) for name in SECRETS},
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "cot.example.com",
    }


def test_check_deploy_is_clean_in_production():
    result = _run("manage.py", "check", "--deploy", "--fail-level", "WARNING", **_production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    # The one silenced warning (HSTS preload) is documented in settings.
    assert "System check identified no issues (1 silenced)." in result.stdout


def test_startup_refuses_dev_only_secrets_with_debug_off():
    serve = ("-c", "import cot_project.wsgi")
    dev_flower = {"FLOWER_BASIC_AUTH": "flower:flower-dev-only"}
    refused = _run(*serve, DJANGO_DEBUG="false", **dev_flower)
    assert refused.returncode != 0
    message = refused.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured: DEV-ONLY default secrets with DJANGO_DEBUG off" in message
    for name in (*SECRETS, "FLOWER_BASIC_AUTH"):
        assert name in message

    # Commands still run (migrate before the secrets are in place); the deploy check says it.
    deploy = _run("manage.py", "check", "--deploy", DJANGO_DEBUG="false")
    assert deploy.returncode != 0
    assert "(cot.E001) DEV-ONLY default secrets" in deploy.stderr

    # A developer's machine with DEBUG on may use them.
    assert _run(*serve, DJANGO_DEBUG="true", **dev_flower).returncode == 0


@pytest.mark.django_db
def test_production_answers_carry_the_browser_protections(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    client = Client()
    redirect = client.get("/admin/login/")
    assert redirect.status_code == 301
    assert redirect["Location"] == "https://testserver/admin/login/"
    # Probes and the scrape come over plain http from inside the network.
    assert client.get("/healthz").status_code == 200

    page = client.get("/admin/login/", secure=True)
    assert page.status_code == 200
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert page["Referrer-Policy"] == "same-origin"
    assert page["X-Frame-Options"] == "DENY"
    policy = page["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]


@pytest.mark.django_db
def test_the_api_docs_page_needs_no_inline_script():
    page = Client().get("/api/docs/").content.decode()
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts and all("src=" in tag for tag in scripts), scripts
    script = Client().get("/api/docs/?script")
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.content.decode()
