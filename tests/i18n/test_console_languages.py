"""Issue 16 in the help-desk console: its pages in 繁體中文 and Português (headings, `lang`),
times in Macau local time with the zone named, a help-desk refusal in the page's language, the
RADIUS clients' Reply-Message language."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.core import (
    admins,
    audit_search,
    helpdesk,
    passcodes,
    radius_clients,
    support,
    users,
)
from app.i18n import local, use_language
from app.models import AuditEvent
from tests.conftest import TEST_ORIGIN, committed, csrf_token, make_user
from tests.helpers.console import signed_in_console

COOKIE = "um2fa_lang"


@pytest.fixture
def settings_overrides():
    return {"campus_networks": "127.0.0.0/8"}


@pytest.fixture
def boss(app, clock):
    return signed_in_console(app, clock, admins.ADMIN)


def page(client, url: str, language: str) -> str:
    client.set_cookie(COOKIE, language)
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def lock_out(app, username: str = "alice") -> None:
    with committed(app) as c:
        for _ in range(c.settings.lockout_threshold):
            passcodes.verify_passcode(c, TEST_ORIGIN, users.get(c, username), "000000")


HEADINGS = [
    ("/admin/", "zh_Hant", "<h1>服務台控制台</h1>"),
    ("/admin/", "pt", "<h1>Consola do apoio informático</h1>"),
    ("/admin/users?q=ali", "zh_Hant", "<h1>尋找用戶</h1>"),
    ("/admin/users?q=ali", "pt", "<h1>Procurar uma pessoa</h1>"),
    ("/admin/audit", "zh_Hant", "<h1>稽核記錄搜尋</h1>"),
    ("/admin/audit", "pt", "<h1>Pesquisa na auditoria</h1>"),
    ("/admin/dashboard", "zh_Hant", "<h1>儀表板</h1>"),
    ("/admin/dashboard", "pt", "<h1>Painel</h1>"),
    ("/admin/radius-clients", "zh_Hant", "<h1>RADIUS 用戶端</h1>"),
    ("/admin/radius-clients", "pt", "<h1>Clientes RADIUS</h1>"),
    ("/admin/admins", "pt", "<h1>Administradores e apoio informático</h1>"),
    ("/admin/api-tokens", "zh_Hant", "<h1>API 權杖</h1>"),
    ("/admin/service-providers", "pt", "<h1>Fornecedores de serviços</h1>"),
    ("/admin/settings", "zh_Hant", "<h1>生效中的設定</h1>"),
]


@pytest.mark.parametrize(("url", "language", "heading"), HEADINGS)
def test_console_pages_speak_the_chosen_language(app, boss, url, language, heading):
    make_user(app, "alice")
    text = page(boss, url, language)
    assert heading in text
    assert f'<html lang="{language.replace("_", "-")}">' in text


def test_the_menu_is_translated(app, boss):
    text = page(boss, "/admin/", "zh_Hant")
    assert ">稽核記錄搜尋</a>" in text and ">儀表板</a>" in text and ">設定</a>" in text
    text = page(boss, "/admin/", "pt")
    assert ">Pesquisa na auditoria</a>" in text and ">Definições</a>" in text


def test_a_persons_page_in_chinese_with_macau_times(app, boss, clock):
    make_user(app, "alice", name="Alice Chan")
    lock_out(app)
    text = page(boss, "/admin/users/alice", "zh_Hant")
    assert '<html lang="zh-Hant">' in text
    assert "<h2>裝置</h2>" in text and "<h2>時間線</h2>" in text and "已鎖定，直至" in text
    assert "澳門時間" in text  # the zone named once, in Chinese
    with committed(app) as c:
        until = support.user_view(c, "alice").locked_until
    assert until is not None
    if until.year != 9999:  # the lockout's end, in Macau time as Chinese writes it
        with use_language("zh_Hant"):
            assert f"已鎖定，直至 {local(until)}" in text


def test_a_persons_page_in_portuguese(app, boss):
    make_user(app, "alice")
    text = page(boss, "/admin/users/alice", "pt")
    assert '<html lang="pt">' in text
    assert "<h2>Dispositivos</h2>" in text and "Emitir um código de recuperação" in text
    assert "hora de Macau" in text.lower() or "Macau" in text


def test_audit_times_are_macau_local_time_in_every_language(app, boss):
    with committed(app) as c:
        c.db.add(AuditEvent(at=datetime(2026, 12, 1, 20, 30, tzinfo=UTC), username="alice",
                            door="radius", action="radius.access", result="reject"))
    for language in ("zh_Hant", "pt"):
        text = page(boss, "/admin/audit?username=alice", language)
        assert "2026-12-02 04:30:00" in text and "2026-12-01 20:30:00" not in text
        assert 'datetime="2026-12-02T04:30:00+08:00"' in text
    assert "時間以澳門時間" in page(boss, "/admin/audit", "zh_Hant")


def test_the_dashboard_hours_are_local(app, boss):
    text = page(boss, "/admin/dashboard", "pt")
    assert "<th>Hora</th>" in text and "UTC" not in text.split("<main")[1]
    assert "Inícios de sessão por hora" in text


def test_a_helpdesk_refusal_is_in_the_pages_language(app, clock):
    desk = signed_in_console(app, clock, admins.HELPDESK)
    make_user(app, "alice")
    lock_out(app)
    desk.set_cookie(COOKIE, "zh_Hant")
    token = csrf_token(desk, "/admin/users/alice")
    answer = desk.post("/admin/users/alice/unlock", data={"csrf_token": token, "reason": " "})
    assert answer.status_code == 400
    assert "請提供原因（會記入稽核記錄）。" in answer.get_data(as_text=True)
    desk.set_cookie(COOKIE, "pt")
    token = csrf_token(desk, "/admin/users/alice")
    answer = desk.post("/admin/users/alice/recovery", data={"csrf_token": token, "reason": "x"})
    assert "Confirme primeiro que verificou o documento" in answer.get_data(as_text=True)


def test_core_errors_follow_the_language_and_stay_english_outside():
    with pytest.raises(helpdesk.HelpdeskError, match="Give a reason"):
        helpdesk.with_reason(TEST_ORIGIN, "")
    with use_language("zh_Hant"), pytest.raises(helpdesk.HelpdeskError, match="請提供原因"):
        helpdesk.with_reason(TEST_ORIGIN, "")
    with use_language("pt"), pytest.raises(radius_clients.RadiusClientError,
                                           match="formato CIDR"):
        radius_clients.parse_address("nowhere")
    with use_language("pt"), pytest.raises(audit_search.AuditSearchError, match="não é uma data"):
        audit_search.parse_time("yesterday", datetime.now(UTC), "since")


def test_the_radius_clients_language_is_chosen_shown_and_changed(app, boss):
    token = csrf_token(boss, "/admin/radius-clients")
    answer = boss.post("/admin/radius-clients", data={
        "csrf_token": token, "name": "vpn1", "address": "10.0.0.5", "mode": "append",
        "language": "zh_Hant"})
    assert answer.status_code == 200
    with committed(app) as c:
        assert radius_clients.find(c, "vpn1").language == "zh_Hant"
    text = page(boss, "/admin/radius-clients", "pt")
    row = text.split('id="radius-client-vpn1"')[1].split("</tr>")[0]
    assert '<option value="zh_Hant" selected>繁體中文</option>' in row
    assert "Predefinido (English)" in row
