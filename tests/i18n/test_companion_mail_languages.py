"""Issue 16: the companion app, the notices by email and the device API speak the person's
language. Real peers: an SMTP server (aiosmtpd) on 127.0.0.1, Flask's test client."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from app.core import notices, preferences, recovery, users
from app.core.context import Origin
from tests.conftest import committed, make_user
from tests.helpers.mail import delivered, running_inbox
from tests.peers.live import free_port

THIEF = Origin(door="recovery", client_addr="203.0.113.9")


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def inbox(smtp_port):
    with running_inbox(smtp_port) as box:
        yield box


@pytest.fixture
def settings_overrides(smtp_port) -> dict:
    return {"smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_from": "2fa@um.example.edu",
            "smtp_timeout": 5, "base_url": "https://2fa.example.edu",
            "admin_emails": "helpdesk@um.example.edu"}


def recovery_mail(app, inbox, language: str | None):
    user_id = make_user(app)
    if language:
        with committed(app) as c:
            preferences.set_language(c, user_id, language)
    with committed(app) as c:
        recovery.issue(c, THIEF, users.get(c, "alice"))
    [(_sender, _to, raw)] = delivered(inbox)
    return message_from_bytes(raw, policy=default_policy)


def test_a_notice_to_a_chinese_speaker_is_in_chinese_in_macau_time(app, inbox, clock):
    mail = recovery_mail(app, inbox, "zh_Hant")
    body = mail.get_content()
    assert mail["Subject"] == "UM 2FA：已為您的帳戶發出一個復原驗證碼"
    assert "Alice 您好：" in body
    assert "如果是您本人，則無需再做任何事。" in body
    assert "來自：位址 203.0.113.9，經由帳戶復原網站" in body
    assert "「這不是我」" in body and "/this-wasnt-me/" in body
    assert "此訊息中的時間均為" in body and "GMT+08:00" in body
    assert "When:" not in body and "Dear" not in body
    # the time: the clock's moment in Macau, as Chinese writes it (年月日, 上午/下午)
    assert "時間：" in body and "年" in body and ("上午" in body or "下午" in body)


def test_a_notice_to_a_portuguese_speaker_is_in_portuguese(app, inbox):
    mail = recovery_mail(app, inbox, "pt")
    body = mail.get_content()
    assert mail["Subject"] == "UM 2FA: Foi emitido um código de recuperação para a sua conta"
    assert "Caro(a) Alice," in body and "Se foi por si, não precisa de fazer mais nada." in body
    assert 'carregue em "Não fui eu"' in body and "código de recuperação será revogado" in body
    assert "Origem: o endereço 203.0.113.9, via portal de recuperação" in body


def test_without_a_stored_language_the_notice_is_in_english(app, inbox):
    mail = recovery_mail(app, inbox, None)
    body = mail.get_content()
    assert mail["Subject"] == "UM 2FA: A recovery passcode was issued for your account"
    assert "If it was you, there is nothing more to do." in body
    assert "Times in this message are Macao time (GMT+08:00)." in body


@pytest.mark.parametrize(("door", "subject"), [
    ("recovery", "UM 2FA：已為您的帳戶發出一個復原驗證碼"),  # the user acted, on a Chinese page
    ("admin", "UM 2FA: A recovery passcode was issued for your account"),  # the help desk did
])
def test_without_a_stored_language_the_mail_follows_who_acted(app, inbox, door, subject):
    """A user who never chose a language: the page they acted on speaks for them; the help
    desk's console language is the help desk's, not theirs (the default language then)."""
    from app.i18n import use_language

    make_user(app)
    with use_language("zh_Hant"), committed(app) as c:
        recovery.issue(c, Origin(door=door, client_addr="10.0.0.9"), users.get(c, "alice"))
    [(_sender, _to, raw)] = delivered(inbox)
    assert message_from_bytes(raw, policy=default_policy)["Subject"] == subject


def test_this_wasnt_me_on_activity_keeps_the_audit_english_and_alerts_in_the_default(
        app, inbox):
    """A person reading Chinese clicks "This wasn't me" on a row of their recent activity: the
    audit record stays English, and the help desk's alert is in the default language."""
    from sqlalchemy import select

    from app.core import wasnt_me
    from app.i18n import use_language
    from app.models import AuditEvent
    from tests.conftest import TEST_ORIGIN, add_totp_device

    make_user(app)
    add_totp_device(app)
    delivered(inbox)  # the "device added" notice
    with committed(app) as c:
        row = c.db.scalars(select(AuditEvent).where(AuditEvent.action == "device.add")).first()
        with use_language("zh_Hant"):
            assert wasnt_me.by_activity(c, TEST_ORIGIN, users.get(c, "alice"), row.id)
    with committed(app) as c:
        detail = c.db.scalar(select(AuditEvent.detail).where(
            AuditEvent.action == "activity.wasnt_me"))
    assert detail.startswith("Device added") and "sessions ended, locked" in detail, detail
    alerts = [message_from_bytes(raw, policy=default_policy) for _s, _t, raw in delivered(inbox)]
    alert = next(m for m in alerts if "reported" in m["Subject"])
    assert "clicked \"This wasn't me\" on their recent activity: Device added" in (
        alert.get_content())


def test_the_notice_words_follow_the_language(app):
    from app.i18n import use_language
    from app.models import Notice

    notice = Notice(event=notices.DEVICE_ADDED, device_name="Thief's phone", door="radius",
                    client_addr="10.1.2.3")
    assert notices.what(notice) == "A device was added to your account: Thief's phone"
    assert notices.where(notice) == "the address 10.1.2.3, through the VPN"
    with use_language("zh_Hant"):
        assert notices.what(notice) == "您的帳戶新增了一部裝置：Thief's phone"
        assert notices.where(notice) == "位址 10.1.2.3，經由VPN"
    with use_language("pt"):
        assert notices.what(notice) == "Foi adicionado um dispositivo à sua conta: Thief's phone"


# --- the companion app ----------------------------------------------------------------------

def test_the_app_page_is_in_the_browsers_language(client):
    page = client.get("/app/", headers={"Accept-Language": "zh-TW,zh;q=0.9"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '<html lang="zh-Hant">' in html
    assert "啟用此手提電話" in html and "Activate this phone" not in html
    assert 'data-timezone="Asia/Macau"' in html and 'data-locale="zh-Hant-MO"' in html
    english = client.get("/app/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="en">' in english and "Activate this phone" in english


def test_the_app_page_follows_the_language_cookie(client):
    client.set_cookie("um2fa_lang", "pt")
    html = client.get("/app/").get_data(as_text=True)
    assert '<html lang="pt">' in html and "Ativar este telemóvel" in html


def test_the_apps_catalog_is_served_as_json(client):
    answer = client.get("/app/strings/zh_Hant.json")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    strings = answer.get_json()
    assert strings["This wasn't me"] == "這不是我"
    assert strings["Login request - tap to review"] == "登入請求 - 輕按查看"  # the worker's
    assert strings["Expires in %(seconds)s s."] == "%(seconds)s 秒後過期。"
    assert "max-age" in answer.headers["Cache-Control"]
    assert client.get("/app/strings/pt.json").get_json()["Approved"] == "Aprovado"
    assert client.get("/app/strings/en.json").get_json() == {}
    for unknown in ("klingon", "zh_Hans", "..%2Fmessages"):
        assert client.get(f"/app/strings/{unknown}.json").status_code == 404


def test_the_device_api_answers_in_the_apps_language(client):
    answer = client.post("/api/device/v1/requests/x/answer", data="not json",
                         headers={"Accept-Language": "zh-Hant", "X-UM2FA-Device": "99",
                                  "X-UM2FA-Timestamp": "1", "X-UM2FA-Signature": "x"})
    assert answer.status_code == 401
    body = answer.get_json()
    assert body["error"] == "未通過認證：不明或未啟用的裝置。"
    assert body["reason"] == "unknown or inactive device"  # what the app acts on


def test_the_app_scripts_mark_their_texts_for_the_catalog():
    from pathlib import Path

    pot = (Path(__file__).resolve().parents[2] / "translations" / "companion.pot").read_text()
    for text in ("Login request - tap to review", "Approved", "Expires in %(seconds)s s.",
                 "This phone is activated for %(user)s at %(issuer)s."):
        assert f'msgid "{text}"' in pot
