"""The accessibility check itself (tests/browser/axe.py) cannot pass silently: a page with known
WCAG violations, served under the app's own Content-Security-Policy, fails it, both when asked
directly and before a test's next action; the same page made right passes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from app.web.csp import CSP
from tests.browser.axe import AxeViolations, AxeWatch, check_axe

pytestmark = pytest.mark.browser

ORIGIN = "http://axe.test"
BAD = """<!doctype html><html><head><title>Bad</title>
<link rel="stylesheet" href="/site.css"></head>
<body><main><h1>Bad</h1><img src="/dot.svg"><p class="faint">Faint words</p>
<button type="button">Next</button></main></body></html>"""
GOOD = """<!doctype html><html lang="en"><head><title>Good</title>
<link rel="stylesheet" href="/site.css"></head>
<body><main><h1>Good</h1><img src="/dot.svg" alt="A dot"><p>Dark words</p>
<button type="button">Next</button></main></body></html>"""
FILES = {
    "/bad": ("text/html", BAD),
    "/good": ("text/html", GOOD),
    "/site.css": ("text/css", "body { background: #fff; color: #111 } .faint { color: #bbb }"),
    "/dot.svg": ("image/svg+xml", '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'
                                  '<circle cx="4" cy="4" r="4"/></svg>'),
}


@pytest.fixture
def served(page: Page, axe_watch: AxeWatch) -> Iterator[Page]:
    """The pages above at ORIGIN, and a watch that has seen nothing yet; the bad page is left
    (for about:blank, not checked) before the context closes."""
    def answer(route):
        path = route.request.url.removeprefix(ORIGIN)
        kind, body = FILES[path]
        route.fulfill(status=200, body=body, content_type=kind,
                      headers={"Content-Security-Policy": CSP})

    page.route(ORIGIN + "/**", answer)
    seen, axe_watch.seen = axe_watch.seen, set()
    try:
        yield page
    finally:
        page.evaluate("location.href = 'about:blank'")
        page.wait_for_url("about:blank")
        axe_watch.seen = seen


def test_a_page_with_violations_fails_the_check(served: Page) -> None:
    served.goto(ORIGIN + "/bad")
    with pytest.raises(AxeViolations) as failed:
        check_axe(served, "the bad page")
    report = str(failed.value)
    for rule in ("html-has-lang (serious)", "image-alt (critical)", "color-contrast (serious)"):
        assert rule in report, report
    assert f"on {ORIGIN}/bad (the bad page)" in report
    assert "- img <img" in report and '- p <p class="faint">' in report, report


def test_the_watch_checks_before_the_next_action(served: Page) -> None:
    served.goto(ORIGIN + "/bad")
    with pytest.raises(AxeViolations, match="image-alt") as failed:
        served.get_by_role("button", name="Next").click()
    assert "test_the_watch_checks_before_the_next_action" in str(failed.value)
    assert "before Locator.click" in str(failed.value)


def test_the_watch_checks_before_a_key_press(served: Page) -> None:
    served.goto(ORIGIN + "/bad")
    with pytest.raises(AxeViolations, match="before Keyboard.press"):
        served.keyboard.press("Tab")


def test_the_same_page_made_right_passes_and_is_checked_once(served: Page,
                                                             axe_watch: AxeWatch) -> None:
    checked = axe_watch.checked
    served.goto(ORIGIN + "/good")
    check_axe(served, "the good page")
    served.get_by_role("button", name="Next").click()
    assert axe_watch.checked == checked + 1
    served.get_by_role("button", name="Next").click()
    served.reload()
    served.get_by_role("button", name="Next").click()
    assert axe_watch.checked == checked + 1  # the same state: not checked again
