"""Browser tests: Debian's Chromium driven by Playwright against a live server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.browser.axe import AxeWatch
from tests.browser.steps import Servers
from tests.peers.live import ROOT, make_live_server
from tests.peers.myum_live import MyumServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"


@pytest.fixture
def live_server(tmp_path):
    server = make_live_server(tmp_path).start()
    yield server
    server.stop()


AXE_WATCH = AxeWatch()


@pytest.fixture(scope="session", autouse=True)
def axe_watch():
    """axe-core checks every page state the browser tests reach (tests/browser/axe.py)."""
    AXE_WATCH.install()
    yield AXE_WATCH
    AXE_WATCH.uninstall()


def pytest_terminal_summary(terminalreporter):
    if AXE_WATCH.checked or AXE_WATCH.repeats:
        terminalreporter.write_line(AXE_WATCH.summary())


@contextmanager
def idp_and_myum(tmp: Path, *, host: str = "127.0.0.1", **settings: str) -> Iterator[Servers]:
    """Our IdP (`um2fa serve`, its UM2FA_BASE_URL on `host`) and myUM, both real subprocesses
    wired together by their metadata as scripts/serve does; stopped on the way out."""
    idp = make_live_server(tmp, **settings)
    idp.env["UM2FA_BASE_URL"] = f"http://{host}:{idp.port}"
    myum = MyumServer(instance_dir=tmp / "myum")
    try:
        idp.start()
        myum.register_with(idp)
        myum.start()
        yield Servers(idp, myum)
    finally:
        myum.stop()
        idp.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context; console errors (CSP violations included) are collected."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    yield page
    context.close()


class Shots:
    def __init__(self, page, name: str) -> None:
        self.page, self.dir, self.n = page, ARTIFACTS / name, 0
        self.dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, label: str) -> Path:
        self.n += 1
        path = self.dir / f"{self.n:02d}-{label}.png"
        # caret="initial": hiding the caret leaves style="" on inputs, which htmx's settle then
        # copies onto swapped-in elements, and the CSP reports that as an inline style.
        self.page.screenshot(path=str(path), full_page=True, caret="initial")
        return path


@pytest.fixture
def shots(page, request):
    return Shots(page, request.node.name)
