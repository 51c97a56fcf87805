"""Signing in through the real sign-in page, as a developer or admin would."""

from __future__ import annotations

import time
from typing import Any

from tests.factories import PASSWORD


def sign_in(page: Any, base_url: str, email: str, password: str = PASSWORD) -> Any:
    """Sign in on `page` and wait for where signing in lands (home for a developer, People for
    an admin); returns the page."""
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.click("main button[type=submit]")
    page.wait_for_url(lambda url: url in (f"{base_url}/", f"{base_url}/people/"))
    return page


def signed_in_page(browser: Any, base_url: str, email: str, width: int | None = None) -> Any:
    """A new browser page signed in as `email`: `width` px wide and phone-tall, else in
    Playwright's default window."""
    viewport = {"width": width, "height": 844} if width else None
    context = browser.new_context(viewport=viewport) if viewport else browser.new_context()
    return sign_in(context.new_page(), base_url, email)


def wait_for(page: Any, expression: str, timeout: float = 20.0) -> None:
    """Wait until `expression` is true in the page. Playwright's wait_for_function compiles its
    predicate in the page, which the portal's Content-Security-Policy forbids (no eval): this
    asks from the test instead, every 50 ms."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {expression}")
        page.wait_for_timeout(50)
