"""Screenshot every page at desktop and phone width, against a running `make run` server.

    .venv/bin/python scripts/screenshots.py [BASE_URL] [OUT_DIR]

Logs in with the demo logins that `seed_demo` prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else "var/screenshots")
PASSWORD = "demo-password-123"  # noqa: S105 - the printed demo password
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]

PAGES = {
    None: ["/", "/accounts/login/", "/accounts/signup/"],
    "developer@example.com": ["/account/", "/account/balance/"],
    "prepaid@example.com": ["/account/balance/"],
    "admin@example.com": ["/people/", "/admin/config/monetization/settings/"],
}


def log_in(page: Page, email: str) -> None:
    page.goto(f"{BASE}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def shoot(page: Page, name: str, size: str) -> None:
    path = OUT / f"{name}-{size}.png"
    page.screenshot(path=str(path), full_page=True)
    print(path)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for size, (width, height) in SIZES.items():
            for login, paths in PAGES.items():
                page = browser.new_context(viewport={"width": width, "height": height}).new_page()
                if login:
                    log_in(page, login)
                for path in paths:
                    page.goto(BASE + path)
                    shoot(page, (login or "anon").split("@")[0] + path.replace("/", "_"), size)
                if login == "admin@example.com":
                    page.goto(f"{BASE}/people/")
                    page.click("text=Dev Default")
                    shoot(page, "admin_people_account", size)
                    page.click(".tabs >> text=Billing type")
                    shoot(page, "admin_billing_type_tab", size)
                    page.check("input[name=billing_type][value=PREPAID]")
                    page.click("text=Continue")
                    shoot(page, "admin_billing_type_confirm", size)
                    page.goto(f"{BASE}/people/")
                    page.click("text=Priya Prepaid")
                    page.click(".tabs >> text=Balance")
                    shoot(page, "admin_balance", size)
                    page.check("input[name=direction][value=decrease]")
                    page.fill("input[name=amount]", "2.50")
                    page.fill("textarea[name=reason]", "Under-charged for May usage")
                    page.click("text=Review adjustment")
                    shoot(page, "admin_adjust_confirm", size)
        browser.close()


if __name__ == "__main__":
    main()
