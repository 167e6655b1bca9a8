"""The companion app's files as the service serves them (the app itself: tests/browser)."""

from __future__ import annotations

import re

import pytest

OFF_CAMPUS = {"REMOTE_ADDR": "203.0.113.5"}


@pytest.fixture(params=["on", "off"])
def where(request) -> dict:
    return OFF_CAMPUS if request.param == "off" else {}


def test_page_answers_anywhere_without_inline_script(client, where) -> None:
    response = client.get("/app/", environ_base=where)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "inline script"
    assert "<style" not in page and "style=" not in page
    assert 'rel="manifest" href="/app/manifest.webmanifest"' in page
    assert 'src="/static/companion/app.js"' in page and 'data-sw="/app/sw.js"' in page
    assert "um2fa_session" not in response.headers.get("Set-Cookie", "")


def test_trailing_slash(client) -> None:
    response = client.get("/app")
    assert response.status_code == 308 and response.headers["Location"].endswith("/app/")


def test_manifest(client, where) -> None:
    response = client.get("/app/manifest.webmanifest", environ_base=where)
    assert response.status_code == 200
    assert response.mimetype == "application/manifest+json"
    manifest = response.get_json(force=True)
    assert manifest["name"] == "UM 2FA"
    assert (manifest["start_url"], manifest["scope"], manifest["display"]) == (
        "/app/", "/app/", "standalone")
    for icon in manifest["icons"]:
        assert client.get(icon["src"]).status_code == 200


def test_service_worker_is_served_from_its_scope(client, where) -> None:
    response = client.get("/app/sw.js", environ_base=where)
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    assert "Service-Worker-Allowed" not in response.headers  # /app/sw.js: its scope is /app/
    assert b"addEventListener(\"push\"" in response.get_data()


def test_a_mangled_activation_link_leaves_the_app_working() -> None:
    """app.js reads the code from the link (location.hash on load, or pasted): a "%" without
    hex digits after it must give "no code", not an exception that leaves "Loading…" up."""
    import json
    import shutil
    import subprocess
    from pathlib import Path

    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node")
    source = (Path(__file__).parents[2] / "static/companion/app.js").read_text()
    function = re.search(r"^function activationCode\(text\) \{.*?^\}", source,
                         re.M | re.S).group(0)
    good = "A" * 32
    cases = ["#activate=%E0%A4%A", "https://2fa.test/app/#activate=%", f"#activate={good}",
             good, "#request=abc"]
    script = f"{function}\nconsole.log(JSON.stringify({json.dumps(cases)}.map(activationCode)));"
    run = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == ["", "", good, good, ""]
