"""Walking the recovery portal with the Flask test client, as a browser would.

`http` holds keyword arguments for every request of a walk (headers, base_url), so the same
helpers serve the prefix, the own-host set-up and a client behind a proxy.
"""

from __future__ import annotations

import re

from tests.conftest import CSRF_RE, PASSWORD

PREFIX = "/recovery"
ALICE = {"role": "student", "username": "alice", "dob": "2001-02-03", "id_last4": "123A"}
PASSCODE_RE = re.compile(r'id="recovery-passcode"[^>]*data-value="(\d{9})"')
MASKS = [
    (re.compile(r'(name="csrf_token" type="hidden" value=")[^"]+'), r"\1<csrf>"),
    (re.compile(r'(name="csrf_token" value=")[^"]+'), r"\1<csrf>"),  # the language switcher
    (re.compile(r'("X-CSRFToken": ")[^"]+'), r"\1<csrf>"),
]


def token(client, prefix: str = PREFIX, **http) -> str:
    page = client.get(f"{prefix}/", **http).get_data(as_text=True)
    match = CSRF_RE.search(page)
    assert match, f"no CSRF token on {prefix}/"
    return match.group(1) or match.group(2)


def identify(client, *, prefix: str = PREFIX, role: str = "student", username: str = "alice",
             dob: str = "2001-02-03", id_last4: str = "123A", extra: dict | None = None,
             **http):
    data = {"csrf_token": token(client, prefix, **http), "username": username, "dob": dob,
            "id_last4": id_last4, **(extra or {})}
    return client.post(f"{prefix}/identify/{role}", data=data, **http)


def choose(client, *, prefix: str = PREFIX, option: str = "passcode", **http):
    return client.post(f"{prefix}/options",
                       data={"csrf_token": token(client, prefix, **http), "option": option},
                       **http)


def password(client, *, prefix: str = PREFIX, password: str = PASSWORD,
             extra: dict | None = None, **http):
    return client.post(f"{prefix}/password",
                       data={"csrf_token": token(client, prefix, **http), "password": password,
                             **(extra or {})}, **http)


def walk(client, *, prefix: str = PREFIX, password_: str = PASSWORD, http: dict | None = None,
         **answers) -> list:
    """Steps 2-4; returns the three answers (step 4's is the verdict)."""
    http = http or {}
    answers = {**ALICE, **answers}
    step2 = identify(client, prefix=prefix, **answers, **http)
    step3 = choose(client, prefix=prefix, **http)
    step4 = password(client, prefix=prefix, password=password_, **http)
    return [step2, step3, step4]


def passcode_of(response) -> str:
    match = PASSCODE_RE.search(response.get_data(as_text=True))
    assert match, "no recovery passcode on the page"
    return match.group(1)


def masked(response) -> str:
    body = response.get_data(as_text=True)
    for pattern, replacement in MASKS:
        body = pattern.sub(replacement, body)
    return body


def use_in_portal(client, code: str, username: str = "alice", password_: str = PASSWORD):
    """Sign in to the 2FA portal and "Add a new device" -> "Enter a Passcode" with `code`."""
    from tests.conftest import post, sign_in

    assert sign_in(client, username, password_).status_code == 302
    return post(client, "/prompt", {"passcode": code, "next": "add"})
