"""The demo chat in a real browser (Chromium from Debian, driven by Playwright).

Run by scripts/test-browser.sh, which starts a node and sets WEFT_BROWSER_BASE
(its http://127.0.0.1:port) and WEFT_BROWSER_DATA_DIR (its store, where the
demo application's token is kept: only the history test reads it, to seed a
long chat over REST as a backend would).
"""
import json
import os
import pathlib
import re
import secrets
import urllib.request

import pytest
from playwright.sync_api import Page, expect, sync_playwright

BASE = os.environ.get("WEFT_BROWSER_BASE", "http://127.0.0.1:8080")
DATA_DIR = os.environ.get("WEFT_BROWSER_DATA_DIR", "")
SHOTS = pathlib.Path(os.environ.get("WEFT_BROWSER_SCREENSHOTS", "target/browser-screenshots"))
CHROMIUM = os.environ.get("WEFT_BROWSER_CHROMIUM", "/usr/bin/chromium")

# Everything the tests wait for happens in well under a second on a laptop.
expect.set_options(timeout=10_000)


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        except Exception as e:  # noqa: BLE001 - any failure to start is fatal, said loudly
            pytest.exit(f"Chromium cannot start ({CHROMIUM}): {e}", returncode=3)
        yield browser
        browser.close()


def user(name):
    """A user id no other test uses."""
    return f"{name}-{secrets.token_hex(3)}"


class Tab:
    """One person in one browser context: a page of the demo chat."""

    def __init__(self, browser, name, exact=False, **context_options):
        options = {"viewport": {"width": 1100, "height": 720}, **context_options}
        self.context = browser.new_context(**options)
        self.page: Page = self.context.new_page()
        self.user = name if exact else user(name)
        self.problems = []
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        # Console errors include CSP refusals: a page that breaks its own policy fails.
        self.page.on(
            "console",
            lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )

    def open(self):
        self.page.goto(f"{BASE}/demo/")
        return self

    def sign_in(self):
        self.open()
        self.page.get_by_label("Your user id", exact=True).fill(self.user)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.locator("#status")).to_have_text("Online")
        return self

    def start_chat(self, *others, first="hi"):
        self.page.locator("#new-chat summary").click()
        self.page.get_by_label("To", exact=True).fill(", ".join(others))
        self.page.get_by_label("First message", exact=True).fill(first)
        self.page.get_by_role("button", name="Start chat").click()
        expect(self.messages().filter(has_text=first)).to_have_count(1)
        return self.chat_number()

    def chat_number(self):
        match = re.search(r"chat=(\d+)", self.page.url)
        assert match, self.page.url
        return int(match.group(1))

    def open_chat(self, title):
        self.page.locator("#chat-list button").filter(has_text=title).first.click()
        expect(self.page.locator("#chat-title")).to_contain_text(title)

    def messages(self):
        return self.page.locator("#message-list .msg")

    def bodies(self):
        return [b.strip() for b in self.page.locator("#message-list .msg .bubble").all_inner_texts()]

    def send(self, text):
        box = self.page.get_by_label("Message", exact=True)
        box.fill(text)
        box.press("Enter")
        expect(self.page.locator("#message-list .msg.mine:not(.pending)").filter(has_text=text)).to_have_count(1)

    def shot(self, name):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))

    def close(self):
        problems = list(self.problems)
        self.context.close()
        assert not problems, f"{self.user}'s page reported: {problems}"


@pytest.fixture
def tabs(browser):
    """Makes tabs (each its own context) and closes them, failing on page errors."""
    made = []

    def make(name, exact=False, **options):
        tab = Tab(browser, name, exact, **options)
        made.append(tab)
        return tab

    yield make
    for tab in made:
        tab.close()


def post_as_backend(chat, sender, body):
    """Posts a message as the demo application's backend (REST, with its token)."""
    assert DATA_DIR, "WEFT_BROWSER_DATA_DIR is not set"
    token = pathlib.Path(DATA_DIR, "demo-app.token").read_text().strip()
    request = urllib.request.Request(
        f"{BASE}/api/v1/applications/{token}/chats/{chat}/messages",
        data=json.dumps({"body": body, "sender": sender}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 201
