"""Admin pages as staff see them: a real headless Chromium against the live test server.

Chromium and its driver come from Debian (`.ci/run` installs them). Without them these
tests are skipped with a message, unless COT_REQUIRE_BROWSER is set (CI sets it), when
their absence fails the run instead of hiding it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from orders.roles import roles_sync

PASSWORD = "pw-browser-123456"


def _chromium() -> tuple[str, str] | None:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (binary, driver) if binary and driver else None


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[str, str]:
    found = _chromium()
    if found is None:
        message = "headless Chromium not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("COT_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
def browser(chromium_paths: tuple[str, str]) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium_paths
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    # The console's errors, so that a test can see what the Content-Security-Policy blocked.
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.implicitly_wait(5)
    try:
        yield chrome
    finally:
        chrome.quit()


def csp_violations(browser: Any) -> list[str]:
    """Console errors since the last call that say the Content-Security-Policy blocked
    something (a script, a style, an image) on the pages visited."""
    return [
        entry["message"]
        for entry in browser.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]


def wait_for_title(browser: Any, text: str, timeout: float = 10) -> None:
    """After a click that loads a page: wait until that page is the one shown."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(lambda b: text in b.title)


@pytest.fixture
def staff_login(live_server: Any, browser: Any) -> Callable[[str], Any]:
    """Log a staff user with `role` in through the admin's login form."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def login(role: str) -> Any:
        roles_sync()
        user = User.objects.create_user(f"b-{role}", password=PASSWORD, is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        browser.get(f"{live_server.url}/admin/login/")
        browser.find_element(By.NAME, "username").send_keys(user.username)
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        WebDriverWait(browser, 10).until(lambda b: "/admin/login/" not in b.current_url)
        return browser

    return login
