"""The 2FA portal, the prompt, "Add a new device" and "My Settings & Devices" in Traditional
Chinese and Portuguese: translated headings, messages and validation, `<html lang>`, and times
in Macau local time (issue 16)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.core import devices, lockout, passcodes, support
from app.core.factors import Verdict
from app.i18n import _, use_language
from app.models import AuditEvent, Device
from tests.conftest import (
    add_totp_device,
    committed,
    make_user,
    post,
    sign_in,
    totp_code,
)
from tests.helpers.portal import step_up, text

ZH = {"Accept-Language": "zh-TW,zh;q=0.9"}
PT = {"Accept-Language": "pt-PT,pt;q=0.9"}


def _zh(client) -> None:
    client.set_cookie("um2fa_lang", "zh_Hant")


def _pt(client) -> None:
    client.set_cookie("um2fa_lang", "pt")


def test_the_sign_in_page_in_chinese_and_portuguese(app, client):
    page = text(client.get("/", headers=ZH))
    assert '<html lang="zh-Hant">' in page
    assert "<h1>雙重認證網站</h1>" in page and "請以您的 UMPASS 帳戶登入" in page
    assert "UMPASS 密碼" in page and ">登入</button>" in page
    page = text(client.get("/", headers=PT))
    assert '<html lang="pt">' in page
    assert "<h1>Portal 2FA</h1>" in page and "Palavra-passe UMPASS" in page
    assert "Iniciar sessão" in page


def test_a_failed_sign_in_and_a_form_error_are_translated(app, client):
    make_user(app)
    _zh(client)
    page = text(sign_in(client, password="wrong-password"))
    assert "UMPASS ID 或密碼不正確，或該帳戶無法登入。" in page
    page = text(post(client, "/sign-in", {"username": "", "password": "x"}))
    assert "請輸入您的 UMPASS ID。" in page  # the form's validator message (_l)
    _pt(client)
    page = text(post(client, "/sign-in", {"username": "alice", "password": ""}))
    assert "Introduza a sua palavra-passe." in page


def _signed_in_with_device(app, client) -> tuple[int, str]:
    make_user(app)
    device_id, secret = add_totp_device(app, name="Phone")
    sign_in(client)
    return device_id, secret


def test_the_prompt_in_chinese_and_a_wrong_passcode(app, client, clock):
    _signed_in_with_device(app, client)
    _zh(client)
    page = text(client.get("/prompt?next=settings"))
    assert '<html lang="zh-Hant">' in page
    assert "<h1>我的設定及裝置</h1>" in page and "輸入驗證碼" in page
    assert "請選擇您的裝置及驗證方式。" in page and "手提電話" in page
    page = text(step_up(client, "000000", "settings"))
    assert "驗證碼不正確，請再試一次。" in page
    page = text(step_up(client, "12", "settings"))  # the form's own check
    assert "驗證碼為 6 位數字（來自您的裝置）或 9 位數字（復原驗證碼）。" in page


def test_the_add_a_new_device_wizard_in_chinese_and_portuguese(app, client, clock):
    _, secret = _signed_in_with_device(app, client)
    _zh(client)
    response = step_up(client, totp_code(secret, clock.now), "add")
    assert response.headers["Location"] == "/devices/add/type"
    page = text(client.get("/devices/add/type"))
    assert "<h1>您要新增哪類裝置？</h1>" in page and "平板電腦" in page
    assert "<title>新增裝置 · UM 2FA</title>" in page
    assert post(client, "/devices/add/type", {"device_type": "tablet"},
                token_from="/devices/add/type").status_code == 302
    _pt(client)
    page = text(client.get("/devices/add/platform"))
    assert '<html lang="pt">' in page and "Que tipo de tablet é?" in page
    page = text(post(client, "/devices/add/platform", {"platform": "windows"},
                     token_from="/devices/add/platform"))
    assert "Escolha iOS ou Android." in page
    post(client, "/devices/add/platform", {"platform": "ios"}, token_from="/devices/add/platform")
    page = text(client.get("/devices/add/app"))
    assert "Tenho o Duo Mobile instalado" in page


def test_my_settings_and_devices_in_chinese_with_macau_local_times(app, client, clock):
    device_id, secret = _signed_in_with_device(app, client)
    step_up(client, totp_code(secret, clock.now), "settings", device=str(device_id))
    with committed(app) as c:  # 20:05 UTC on 1 January is 04:05 on 2 January in Macau
        c.db.get(Device, device_id).last_used_at = datetime(2026, 1, 1, 20, 5, tzinfo=UTC)
    page = text(client.get("/settings"))
    assert "Last used 2 Jan 2026, 4:05" in page and "UTC" not in page
    assert "Macao time (GMT+08:00)" in page
    _zh(client)
    page = text(client.get("/settings"))
    assert '<html lang="zh-Hant">' in page and "<h1>我的設定及裝置</h1>" in page
    assert "上次使用：2026年1月2日" in page and "裝置選項" in page
    assert "最近活動" in page and "已使用密碼登入" in page and "這不是我" in page
    assert "澳門時間" in page
    _pt(client)
    page = text(client.get("/settings"))
    assert "As minhas definições e dispositivos" in page and "Opções do dispositivo" in page
    assert "02/01/2026" in page


def test_the_passcode_and_lockout_messages_follow_the_language_they_are_built_in():
    wrong = passcodes.PasscodeOutcome(Verdict.WRONG, attempts_left=2)
    with use_language("zh_Hant"):
        assert wrong.message == ("驗證碼不正確，請再試一次。"
                                 "再失敗 2 次，您的帳戶便會被暫時鎖定。")
        assert passcodes.PasscodeOutcome(Verdict.WRONG, locked=True).message.startswith(
            "由於失敗次數過多，您的帳戶已暫時鎖定。")
    with use_language("pt"):
        assert lockout.attempts_left_warning(1) == (
            "Resta 1 tentativa antes de a sua conta ser temporariamente bloqueada.")
        assert lockout.attempts_left_warning(2).startswith("Restam 2 tentativas")
        assert passcodes.MESSAGES[Verdict.REPLAY].startswith("Esse código de acesso já foi")
    with use_language("en"):
        assert wrong.message == ("Incorrect passcode. Please try again. 2 attempts left before "
                                 "your account is temporarily locked.")


def test_recent_activity_words_and_device_labels_are_translated():
    row = AuditEvent(action="device.add", result="ok", device="Phone")
    with use_language("zh_Hant"):
        assert support.activity_words(row) == "已新增裝置：Phone"
        assert support.activity_words(row, translate=False) == "Device added: Phone"
    with use_language("pt"):
        assert support.activity_words(row) == "Dispositivo adicionado: Phone"
    assert set(devices.DEVICE_TYPES) == {"mobile", "tablet", "token", "security_key"}
    with use_language("zh_Hant"):
        assert _(devices.DEVICE_TYPES["security_key"]) == "保安金鑰或通行密鑰"


def test_an_error_page_in_chinese(app, client):
    page = text(client.get("/no-such-page", headers=ZH))
    assert '<html lang="zh-Hant">' in page and "<h1>找不到頁面</h1>" in page
    assert "返回雙重認證網站" in page
