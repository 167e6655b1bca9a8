"""The pages no walk reaches, in every language, for the accessibility check (tests/browser/
axe.py): the error page, the console's "You are off campus", the SSO's sign-in and sign-out
problems, its "Sign out" page and a "This wasn't me" link that is not one. Each is opened in
the language the switcher's cookie chose; axe-core checks it before the next one opens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from app.i18n import html_tag
from tests.browser.axe import AxeWatch
from tests.browser.steps import assert_clean_console
from tests.peers.live import LiveServer, make_live_server

pytestmark = pytest.mark.browser

PAGES = {"/no-such-page": 404, "/admin/": 403, "/saml/sso": 400, "/saml/slo": 200,
         "/saml/slo?SAMLRequest=not-a-request": 400, "/this-wasnt-me/not-a-token": 404}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    # The console answers only elsewhere: 127.0.0.1 meets "You are off campus" there.
    server = make_live_server(tmp_path_factory.mktemp("error-pages"),
                              admin_networks="192.0.2.0/24")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("lang", ["en", "zh_Hant", "pt"])
def test_the_error_pages_in_every_language(browser: Browser, server: LiveServer,
                                           axe_watch: AxeWatch, lang: str) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.add_cookies([{"name": "um2fa_lang", "value": lang, "url": server.url}])
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    checked = axe_watch.checked + axe_watch.repeats
    try:
        for path, status in PAGES.items():
            response = page.goto(server.url + path)
            assert response is not None and response.status == status, path
            assert page.locator("html").get_attribute("lang") == html_tag(lang), path
            assert page.locator("h1").count() == 1, path
            axe_watch.settle(page, f"{path} in {lang}")
        assert axe_watch.checked + axe_watch.repeats - checked >= len(PAGES)
        assert_clean_console(page, allow=("Failed to load resource",))
    finally:
        context.close()
