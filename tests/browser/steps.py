"""Steps a person takes in the portal, shared by the browser tests (the seed guide's words)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

PASSWORD = "correct-horse-9"
NAME = "Alice Chan"
CSP_MARKERS = ("Content Security Policy", "Refused to")


def add_alice(server) -> None:
    server.cli("users", "add", "alice", "--password", PASSWORD, "--dob", "2001-02-03",
               "--id-last4", "123A", "--name", NAME)


def sign_in(page: Page, server, shots, *, label: str = "") -> None:
    """The portal's sign-in form, then the "Welcome" page."""
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="2FA portal")).to_be_visible()
    page.get_by_label("UMPASS ID").fill("alice")
    page.get_by_label("UMPASS password").fill(PASSWORD)
    shots(f"{label}sign-in")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=f"Welcome, {NAME}")).to_be_visible()


def enter_passcode(page: Page, shots, code: str, label: str) -> None:
    """ "Enter a Passcode": htmx swaps the field into the prompt in place; type it; Verify."""
    page.get_by_role("link", name="Enter a Passcode").click()
    field = page.locator("#method input[name=passcode]")
    expect(field).to_be_visible()
    field.fill(code)
    shots(f"{label}-passcode-typed")
    page.get_by_role("button", name="Verify").click()


def add_device_until_app(page: Page, shots, *, kind: str = "Mobile phone",
                         platform: str = "Android") -> None:
    """ "Add a new device" from the portal home, already past its prompt: type, platform,
    up to the "Install Duo Mobile" page."""
    expect(page.get_by_role("heading", name="What type of device are you adding?")).to_be_visible()
    page.get_by_role("button", name=kind).click()
    page.get_by_role("radio", name=platform).check()
    shots("platform")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Install Duo Mobile")).to_be_visible()
    shots("install-app")


def assert_clean_console(page: Page, *, allow: tuple[str, ...] = ()) -> None:
    """No CSP violations and no console errors, except those naming one of `allow` (e.g. the
    status of a refused API call the test provoked on purpose)."""
    errors = [e for e in page.console_errors if not any(a in e for a in allow)]
    csp = [e for e in page.console_errors if any(m in e for m in CSP_MARKERS)]
    assert csp == [], f"CSP violations: {csp}"
    assert errors == [], f"console errors: {errors}"
