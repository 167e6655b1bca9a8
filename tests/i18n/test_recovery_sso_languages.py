"""Issue 16: the recovery portal, the SSO door's pages (and the SAML errors they show) and
"This wasn't me" speak 繁體中文 and Português, with times in Macau local time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.core import notices, users
from app.i18n import N_, local_clock, use_language
from app.i18n.refusal import said as shown
from app.models import Notice
from saml.xml import SamlError
from tests.conftest import audit_rows, committed, make_user, post
from tests.helpers import recovery_steps as steps
from tests.helpers.sso import IDP, go, idp_metadata, make_sp
from tests.peers.saml_sp import TestSP

P = steps.PREFIX
BROWSER = {"zh_Hant": "zh-TW,zh;q=0.9", "pt": "pt-PT,pt;q=0.9"}
TAG = {"zh_Hant": "zh-Hant", "pt": "pt"}


def speaking(client, language: str):
    """The client is a browser whose preferred language is `language`."""
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = BROWSER[language]
    return client


def page(response) -> str:
    return response.get_data(as_text=True)


def heading(body: str) -> str:
    match = re.search(r"<h1>(.*?)</h1>", body, re.S)
    assert match, "no <h1>"
    return match.group(1).strip()


# --- the recovery portal ------------------------------------------------------------------------

@pytest.mark.parametrize(("language", "title", "role"), [
    ("zh_Hant", "帳戶復原網站", "學生"),
    ("pt", "Portal de recuperação", "Estudante"),
])
def test_the_recovery_portal_speaks_the_browsers_language(app, client, language, title, role):
    body = page(speaking(client, language).get(f"{P}/"))
    assert f'<html lang="{TAG[language]}">' in body
    assert heading(body) == title and role in body
    assert "Recovery portal" not in body and "Choose your role" not in body


@pytest.mark.parametrize(("language", "title", "label"), [
    ("zh_Hant", "核實您的身份", "出生日期"),
    ("pt", "Verifique a sua identidade", "Data de nascimento"),
])
def test_the_identify_step_is_translated(app, client, language, title, label):
    body = page(speaking(client, language).get(f"{P}/identify/student"))
    assert heading(body) == title and label in body and "Date of birth" not in body


@pytest.mark.parametrize(("language", "error"), [
    ("zh_Hant", "請以 YYYY-MM-DD 格式輸入出生日期，例如 2001-02-03。"),
    ("pt", "Introduza a sua data de nascimento no formato AAAA-MM-DD, por exemplo 2001-02-03."),
])
def test_a_validation_error_is_translated(app, client, language, error):
    make_user(app)
    response = steps.identify(speaking(client, language), dob="03/02/2001")
    assert response.status_code == 400
    assert error in page(response) and "Enter your date of birth" not in page(response)


def test_a_malformed_date_from_core_is_translated_too(app, client):
    make_user(app)
    response = steps.identify(speaking(client, "zh_Hant"), dob="2001-02-30")
    assert response.status_code == 400
    assert "出生日期 &#39;2001-02-30&#39; 不是 YYYY-MM-DD 格式的有效日期" in page(response)


@pytest.mark.parametrize(("language", "options", "password"), [
    ("zh_Hant", "您需要甚麼？", "輸入您的 UMPASS 密碼"),
    ("pt", "De que precisa?", "Introduza a sua palavra-passe UMPASS"),
])
def test_the_options_and_password_steps_are_translated(app, client, language, options,
                                                       password):
    make_user(app)
    speaking(client, language)
    assert steps.identify(client).status_code == 303
    body = page(client.get(f"{P}/options"))
    assert heading(body) == options and f'<html lang="{TAG[language]}">' in body
    assert steps.choose(client).status_code == 303
    assert heading(page(client.get(f"{P}/password"))) == password


@pytest.mark.parametrize(("language", "title", "words"), [
    ("zh_Hant", "您的 2FA 復原驗證碼", ("有效期至", "澳門時間", "即 60 分鐘後")),
    ("pt", "O seu código de recuperação 2FA", ("Expira às", "Macau", "daqui a 60 minutos")),
])
def test_the_passcode_page_gives_its_expiry_in_macau_local_time(app, client, clock, language,
                                                                title, words):
    make_user(app)
    issued = steps.walk(speaking(client, language))[2]
    body = page(issued)
    assert issued.status_code == 200 and heading(body) == title
    expires = datetime.fromtimestamp(clock.now, UTC) + timedelta(seconds=3600)
    here = expires.astimezone(ZoneInfo("Asia/Macau"))
    with use_language(language):
        clock_text = local_clock(expires)
    assert f'<time datetime="{here.isoformat(timespec="seconds")}">{clock_text}</time>' in body
    assert all(word in body for word in words), body
    assert " UTC" not in body and "expires at" not in body


@pytest.mark.parametrize(("language", "title"), [
    ("zh_Hant", "嘗試次數過多"), ("pt", "Demasiadas tentativas")])
def test_the_lock_page_is_translated(app, client, language, title):
    make_user(app)
    speaking(client, language)
    answer = None
    for _ in range(6):
        answer = steps.walk(client, password_="wrong password")[2]
        if answer.status_code == 429:
            break
    assert answer is not None and answer.status_code == 429
    assert heading(page(answer)) == title


# --- the SSO door -------------------------------------------------------------------------------

@pytest.fixture
def settings_overrides():
    return {"base_url": IDP}


@pytest.mark.parametrize(("language", "sign_in", "use"), [
    ("zh_Hant", "登入 ", "請使用您的 UMPASS 帳戶。"),
    ("pt", "Iniciar sessão em ", "Use a sua conta UMPASS."),
])
def test_the_sso_sign_in_page_is_translated(app, client, language, sign_in, use):
    sp = make_sp(client, app)
    url, _ = sp.login()
    go(speaking(client, language), url)
    body = page(client.get("/sso/sign-in"))
    assert f'<html lang="{TAG[language]}">' in body
    assert heading(body).startswith(sign_in) and use in body


@pytest.mark.parametrize(("language", "title", "reason"), [
    ("zh_Hant", "我們無法為您登入", "此服務未在大學的登入服務登記。"),
    ("pt", "Não foi possível iniciar a sua sessão",
     "Este serviço não está registado no serviço de início de sessão da universidade."),
])
def test_a_saml_error_page_is_translated_and_the_audit_stays_english(app, client, language,
                                                                    title, reason):
    sp = TestSP(idp_metadata=idp_metadata(client))  # not registered
    url, _ = sp.login()
    response = go(speaking(client, language), url)
    body = page(response)
    assert response.status_code == 400 and f'<html lang="{TAG[language]}">' in body
    assert heading(body) == title and reason in body
    assert "not registered" in audit_rows(app, "saml.request")[-1].detail


def test_a_service_providers_refusal_is_translated_on_the_page_and_english_in_the_audit(
        app, client):
    """An SP that asks for its answer at an address it never registered: the person reads
    why in their language; the audit record stays English."""
    import base64

    from tests.sso.test_sso import _authn_request

    sp = make_sp(client, app)
    xml = _authn_request(sp.entity_id, acs="http://evil.test/acs")
    response = speaking(client, "zh_Hant").post(
        "/saml/sso", data={"SAMLRequest": base64.b64encode(xml.encode())})
    assert response.status_code == 400
    assert "has not registered" not in page(response)
    with use_language("zh_Hant"):
        from app.i18n import _
        assert _("The service asked for its answer to go to an address it has not "
                 "registered.") in page(response)
    assert "has not registered" in audit_rows(app, "saml.request")[-1].detail


def test_a_samls_message_and_its_terms_are_translated_where_shown():
    error = SamlError(N_("The %(what)s's signature is not valid."), terms=("what",),
                      what=N_("request"))
    assert str(error) == "The request's signature is not valid."  # the audit's
    with use_language("zh_Hant"):
        assert shown(error) == "請求的簽署無效。"
    with use_language("pt"):
        assert shown(error) == "A assinatura do pedido não é válida."
    with use_language("pt"):
        assert shown(N_("There is no sign-out in progress.")) == \
            "Não há nenhum fim de sessão em curso."


@pytest.mark.parametrize(("language", "title"), [
    ("zh_Hant", "登出"), ("pt", "Terminar sessão")])
def test_the_sign_out_page_is_translated(app, client, language, title):
    assert heading(page(speaking(client, language).get("/saml/slo"))) == title


# --- "This wasn't me" ---------------------------------------------------------------------------

def _notice(app, token: str) -> datetime:
    make_user(app)
    with committed(app) as c:
        user = users.get(c, "alice")
        now = c.now()
        c.db.add(Notice(user_id=user.id, event=notices.RECOVERY_ISSUED, door="recovery",
                        client_addr="203.0.113.9", created_at=now,
                        token_hash=notices.token_hash(c, token),
                        expires_at=now + timedelta(days=7)))
    return now


@pytest.mark.parametrize(("language", "title", "button", "offer"), [
    ("zh_Hant", "這是您本人嗎？", "這不是我", "我們會撤銷該復原驗證碼"),
    ("pt", "Foi por si?", "Não fui eu", "revogamos o código de recuperação"),
])
def test_this_wasnt_me_is_translated_with_the_local_time(app, client, language, title,
                                                         button, offer):
    created = _notice(app, "t" * 43)
    body = page(speaking(client, language).get("/this-wasnt-me/" + "t" * 43))
    assert f'<html lang="{TAG[language]}">' in body and heading(body) == title
    assert f"{button}</button>" in body and offer in body
    here = created.replace(tzinfo=created.tzinfo or UTC).astimezone(ZoneInfo("Asia/Macau"))
    assert f'<time datetime="{here.isoformat(timespec="seconds")}">' in body


@pytest.mark.parametrize(("language", "title"), [
    ("zh_Hant", "您的帳戶已鎖定"), ("pt", "A sua conta está bloqueada")])
def test_this_wasnt_me_done_is_translated(app, client, language, title):
    _notice(app, "d" * 43)
    path = "/this-wasnt-me/" + "d" * 43
    response = post(speaking(client, language), path, token_from=path)
    assert response.status_code == 200 and heading(page(response)) == title


@pytest.mark.parametrize(("language", "title"), [
    ("zh_Hant", "此連結無效"), ("pt", "Esta ligação não é válida")])
def test_an_unknown_link_is_translated(app, client, language, title):
    response = speaking(client, language).get("/this-wasnt-me/" + "x" * 43)
    assert response.status_code == 404 and heading(page(response)) == title
