"""The three doors a person walks, in 繁體中文 and in Português, in Debian's Chromium: the
on-campus "Add a new device" wizard, the recovery portal up to its passcode, and the SSO sign-in
up to the 2FA prompt. Each language is chosen once by the browser's Accept-Language and once by
clicking the switcher in the footer. On every page: `<html lang>`, a translated heading, and no
sideways scrolling on a 320 px phone (docs/languages.md). Screenshots: test-artifacts/languages/.

The walk finds its way by addresses, form fields and button values, never by English words.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from app.i18n import _, html_tag, use_language
from tests.browser.conftest import ARTIFACTS, idp_and_myum
from tests.browser.steps import PASSWORD, Servers, assert_clean_console

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS.parent / "languages"
PHONE = {"width": 320, "height": 640}
LANGUAGES = ("zh_Hant", "pt")
LOCALES = {"zh_Hant": "zh-TW", "pt": "pt-PT"}
WAYS = ("accept", "switch")
DOB, ID_LAST4 = "1990-04-05", "7Q8R"


@dataclass
class Walk:
    page: Page
    lang: str
    way: str
    servers: Servers
    n: int = 0

    @property
    def url(self) -> str:
        return self.servers.idp.url

    def check(self, label: str, english: str) -> None:
        """This page speaks `lang`: `<html lang>`, its h1 is not the English one (`english`
        translated under `lang`, when it is a whole msgid, or else simply not `english`), no
        horizontal overflow at 320 px; and a screenshot."""
        self.page.wait_for_load_state()
        assert self.page.locator("html").get_attribute("lang") == html_tag(self.lang), label
        heading = " ".join(self.page.locator("h1").first.inner_text().split())
        with use_language(self.lang):
            expected = _(english)
        if expected != english:
            assert heading == expected, f"{label}: {heading!r} is not {expected!r}"
        assert heading != english, f"{label}: the heading {heading!r} is still English"
        width = self.page.evaluate("[document.documentElement.scrollWidth,"
                                   " document.documentElement.clientWidth]")
        self.n += 1
        name = f"{self.lang}-{self.way}-{self.n:02d}-{label}.png"
        self.page.screenshot(path=str(SHOTS / name), full_page=True, caret="initial")
        assert width[0] <= width[1], f"{label}: scrolls sideways at 320 px ({width})"

    def choose(self) -> None:
        """By the switcher: click the language's button in the footer (Accept-Language: by the
        browser's locale, nothing to do)."""
        if self.way == "switch":
            assert self.page.locator("html").get_attribute("lang") == "en"
            self.page.locator(f"form.languages button[value={self.lang}]").click()
            self.page.wait_for_load_state()


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[Servers]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with idp_and_myum(tmp_path_factory.mktemp("languages")) as both:  # 127.0.0.1: on campus
        yield both


@pytest.fixture
def walk(browser: Browser, servers: Servers, request) -> Iterator[Walk]:
    lang, way = request.param
    options: dict = {"viewport": PHONE}
    if way == "accept":
        options.update(locale=LOCALES[lang],
                       extra_http_headers={"Accept-Language": f"{LOCALES[lang]},en;q=0.5"})
    else:
        options.update(locale="en-US", extra_http_headers={"Accept-Language": "en-US"})
    context = browser.new_context(**options)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    yield Walk(page, lang, way, servers)
    context.close()


CASES = [pytest.param((lang, way), id=f"{lang}-{way}") for lang in LANGUAGES for way in WAYS]


def new_user(walk: Walk, door: str) -> str:
    user = f"{door}{walk.lang.lower().replace('_', '')}{walk.way}"
    walk.servers.idp.cli("users", "add", user, "--password", PASSWORD, "--dob", DOB,
                         "--id-last4", ID_LAST4, "--role", "staff", "--name", "Lee Ka Man")
    return user


def sign_in(page: Page, user: str) -> None:
    page.locator("#username").fill(user)
    page.locator("#password").fill(PASSWORD)
    page.locator("form.stack button[type=submit]").click()


@pytest.mark.parametrize("walk", CASES, indirect=True)
def test_add_a_device_on_campus(walk: Walk) -> None:
    page, user = walk.page, new_user(walk, "add")
    recovery = walk.servers.idp.cli("recovery", "issue", user).stdout.strip()
    page.goto(walk.url + "/")
    walk.choose()
    walk.check("sign-in", "2FA portal")
    sign_in(page, user)
    expect(page.locator("a[href='/devices/add']")).to_be_visible()
    walk.check("home", "Welcome, Lee Ka Man")
    page.locator("main a[href='/devices/add']").click()
    walk.check("prompt", "Add a new device")  # no device yet: the passcode field at once
    page.locator("#method input[name=passcode]").fill(recovery)
    page.locator("#method button[type=submit]").click()
    expect(page.locator("button[name=device_type][value=mobile]")).to_be_visible()
    walk.check("device-type", "What type of device are you adding?")
    page.locator("button[name=device_type][value=mobile]").click()
    expect(page.locator("input[name=platform]").first).to_be_visible()
    walk.check("platform", "What type of mobile phone is it?")
    page.locator("input[name=platform][value=android]").check()
    page.locator("main form.stack button[type=submit]").click()
    expect(page.locator("button[name=app][value=totp]")).to_be_visible()
    walk.check("install-app", "Install Duo Mobile or any authenticator app")
    page.locator("button[name=app][value=totp]").click()
    expect(page.locator("img.qr")).to_be_visible()
    walk.check("activate", "Activate your device")
    secret = "".join(page.locator("#secret").inner_text().split())
    page.locator("#passcode").fill(pyotp.TOTP(secret).now())
    page.locator("main form.stack button[type=submit]").click()
    expect(page.locator("input#name")).to_be_visible()
    walk.check("name", "Give your device a name")
    page.locator("input#name").fill("手機 Telemóvel")
    page.locator("main form.stack button[type=submit]").click()
    expect(page.locator("h1")).to_contain_text("手機 Telemóvel")
    walk.check("added", "“手機 Telemóvel” was added")
    assert_clean_console(page)


@pytest.mark.parametrize("walk", CASES, indirect=True)
def test_the_recovery_portal(walk: Walk) -> None:
    page, user = walk.page, new_user(walk, "rec")
    page.goto(walk.url + "/recovery/")
    walk.choose()
    walk.check("roles", "Recovery portal")
    page.locator("a[href$='/identify/staff']").click()
    expect(page.locator("#dob")).to_be_visible()
    walk.check("identify", "Verify your identity")
    page.locator("#username").fill(user)
    page.locator("#dob").fill(DOB)
    page.locator("#id_last4").fill(ID_LAST4)
    page.locator("main form button[type=submit]").click()
    expect(page.locator("input[name=option]").first).to_be_visible()
    walk.check("options", "What do you need?")
    page.locator("input[name=option][value=passcode]").check()
    page.locator("main form button[type=submit]").click()
    expect(page.locator("#password")).to_be_visible()
    walk.check("password", "Enter your UMPASS password")
    page.locator("#password").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page.locator("#recovery-passcode")).to_be_visible()
    walk.check("passcode", "Your 2FA recovery passcode")
    assert re.fullmatch(r"\d{3} \d{3} \d{3}", page.locator("#recovery-passcode").inner_text())
    assert_clean_console(page)


@pytest.mark.parametrize("walk", CASES, indirect=True)
def test_the_sso_prompt(walk: Walk) -> None:
    page, user = walk.page, new_user(walk, "sso")
    page.goto(walk.servers.myum.url + "/")
    page.get_by_role("link", name="Sign in").click()  # myUM's own page, in English
    page.wait_for_url(re.compile(re.escape(walk.url) + "/sso/sign-in"))
    walk.choose()
    walk.check("sso-sign-in", "Sign in to myUM")
    sign_in(page, user)
    expect(page.locator("#prompt-form, main a[href$='/devices/add']").first).to_be_visible()
    walk.check("sso-prompt", "Signing in to myUM")
    assert_clean_console(page)



WIDTHS = (320, 1280)  # what fits 320 px fits 390 px (the walk above is at 320 px)
WIDE_PAGES = ("/settings", "/admin/users/{user}", "/admin/audit")  # tables, action cards


def test_the_console_and_settings_fit_every_width_in_every_language(browser: Browser,
                                                                   servers: Servers) -> None:
    """The pages with tables: the table scrolls in its own box, never the page."""
    idp, user = servers.idp, "consolelayout"
    idp.cli("users", "add", user, "--password", PASSWORD, "--dob", DOB, "--id-last4", ID_LAST4,
            "--role", "staff", "--name", "Lee Ka Man")
    idp.cli("admins", "add", user, "--role", "admin")
    uri = idp.cli("devices", "add-totp", user, "--name", "Phone").stdout.strip()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(idp.url + "/admin/sign-in")
        sign_in(page, user)
        page.locator("#methods a.button.secondary").click()
        page.locator("#method input[name=passcode]").fill(pyotp.parse_uri(uri).now())
        page.locator("#method button[type=submit]").click()
        page.wait_for_url(idp.url + "/admin/")
        for lang in ("en", *LANGUAGES):
            context.add_cookies([{"name": "um2fa_lang", "value": lang, "url": idp.url}])
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 800})
                for path in WIDE_PAGES:
                    url = path.format(user=user)
                    page.goto(idp.url + url)
                    assert page.locator("html").get_attribute("lang") == html_tag(lang)
                    sizes = page.evaluate("[document.documentElement.scrollWidth,"
                                          " document.documentElement.clientWidth]")
                    assert sizes[0] <= sizes[1], f"{url} at {width} px in {lang}: {sizes}"
                    if width == 320:
                        name = f"{lang}-wide-{url.strip('/').replace('/', '-')}-{width}.png"
                        page.screenshot(path=str(SHOTS / name), full_page=True)
    finally:
        context.close()
