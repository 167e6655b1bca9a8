"""The page's language (docs/languages.md): the browser's Accept-Language, the switcher on every
page (a cookie, and the user's own choice once signed in), the settings that say which
languages we offer; and local times in UM2FA_TIMEZONE in each language."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from app.config import ConfigError, load_settings
from app.i18n import local, local_clock, local_date, local_iso, use_language, zone
from app.web.language import COOKIE
from tests.conftest import csrf_token, make_user, post, sign_in

LANG_RE = re.compile(r'<html lang="([^"]+)">')
RECOVERY_HOST = "recovery.example.edu"


def html_lang(response) -> str:
    match = LANG_RE.search(response.get_data(as_text=True))
    assert match, "no <html lang>"
    return match.group(1)


def page_lang(client, url: str = "/", **kwargs) -> str:
    return html_lang(client.get(url, **kwargs))


def switch(client, language: str, next_url: str = "/", *, token_from: str = "/", **kwargs):
    return post(client, "/language", {"language": language, "next": next_url},
                token_from=token_from, **kwargs)


# --- Accept-Language ----------------------------------------------------------------------

@pytest.mark.parametrize(("header", "expected"), [
    ("zh-TW", "zh-Hant"), ("zh-HK", "zh-Hant"), ("zh-MO", "zh-Hant"), ("zh-Hant", "zh-Hant"),
    ("zh-Hant-TW", "zh-Hant"), ("zh-tw,zh;q=0.9", "zh-Hant"),
    ("pt", "pt"), ("pt-PT", "pt"), ("pt-BR", "pt"), ("pt-MO,en;q=0.5", "pt"),
    ("fr", "en"), ("zh-CN", "en"), ("zh", "en"), ("en-US", "en"), ("", "en"),
    ("fr, pt;q=0.8, zh-TW;q=0.5", "pt"), ("zh-TW;q=0.5, pt;q=0.4", "zh-Hant"),
    ("pt;q=0.3, zh-MO;q=0.9, en;q=0.1", "zh-Hant"), ("zh-CN, fr;q=0.9, en;q=0.1", "en"),
])
def test_accept_language_chooses_the_page_language(client, header, expected):
    headers = {"Accept-Language": header} if header else {}
    answer = client.get("/", headers=headers)
    assert html_lang(answer) == expected
    assert answer.headers["Content-Language"] == expected
    assert "Accept-Language" in answer.headers["Vary"]


def test_no_accept_language_is_english(client):
    answer = client.get("/")
    assert html_lang(answer) == "en" and answer.headers["Content-Language"] == "en"


# --- the switcher -------------------------------------------------------------------------

def test_the_switcher_sets_the_cookie_and_goes_back(client):
    answer = switch(client, "zh_Hant", "/recovery/?x=1")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/recovery/?x=1"
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None and cookie.value == "zh_Hant"
    assert cookie.http_only
    # The cookie outranks the browser's Accept-Language.
    assert page_lang(client, headers={"Accept-Language": "pt-PT"}) == "zh-Hant"
    switch(client, "pt")
    assert page_lang(client, headers={"Accept-Language": "zh-TW"}) == "pt"
    switch(client, "en")
    assert page_lang(client, headers={"Accept-Language": "zh-TW"}) == "en"


def test_the_switcher_takes_a_language_tag_too(client):
    switch(client, "zh-Hant")
    assert client.get_cookie(COOKIE).value == "zh_Hant"


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example/",
                                    "/\\evil.example", "\\\\evil.example", "evil",
                                    "/language", "/no-such-page", "", "javascript:alert(1)",
                                    "///evil.example", "/\t/evil.example"])
def test_the_switcher_goes_back_only_to_our_own_pages(client, target):
    answer = switch(client, "pt", target)
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/"
    assert client.get_cookie(COOKIE).value == "pt"


def test_an_unknown_language_changes_nothing(client):
    switch(client, "pt")
    answer = switch(client, "fr", "/recovery/")
    assert answer.status_code == 303 and answer.headers["Location"] == "/recovery/"
    assert client.get_cookie(COOKIE).value == "pt"
    assert page_lang(client) == "pt"
    for junk in ("", "xx_YY", "zh-CN", "../../etc/passwd"):
        switch(client, junk)
        assert client.get_cookie(COOKIE).value == "pt"


def test_a_forged_cookie_is_ignored(client):
    client.set_cookie(COOKIE, "klingon")
    assert page_lang(client, headers={"Accept-Language": "pt"}) == "pt"
    client.set_cookie(COOKIE, "<script>")
    assert page_lang(client) == "en"


def test_the_switcher_needs_the_csrf_token(client):
    answer = client.post("/language", data={"language": "pt", "next": "/"})
    assert answer.status_code == 400
    assert client.get_cookie(COOKIE) is None


def test_the_switcher_lists_each_language_in_its_own_words(client):
    body = client.get("/", headers={"Accept-Language": "pt"}).get_data(as_text=True)
    assert 'action="/language"' in body
    for code, words, tag in (("en", "English", "en"), ("zh_Hant", "繁體中文", "zh-Hant"),
                             ("pt", "Português", "pt")):
        assert re.search(rf'value="{code}" lang="{tag}" class="link"[^>]*>{words}</button>',
                         body), code
    assert re.search(r'value="pt" lang="pt" class="link" aria-current="true">', body)
    assert 'name="next" value="/"' in body


def test_the_switcher_comes_back_to_the_page_it_was_on(client):
    body = client.get("/recovery/identify/staff?x=1").get_data(as_text=True)
    assert 'name="next" value="/recovery/identify/staff?x=1"' in body


# --- the user's own choice ----------------------------------------------------------------

def test_signed_in_the_choice_is_the_users_in_every_browser(app, client):
    make_user(app)
    sign_in(client)
    switch(client, "zh_Hant")
    assert page_lang(client, headers={"Accept-Language": "pt"}) == "zh-Hant"

    elsewhere = app.test_client()  # another browser, which asks for Portuguese
    assert page_lang(elsewhere, headers={"Accept-Language": "pt"}) == "pt"
    sign_in(elsewhere)
    assert page_lang(elsewhere, headers={"Accept-Language": "pt"}) == "zh-Hant"


def test_a_choice_made_before_signing_in_becomes_the_users(app, client):
    make_user(app)
    switch(client, "pt")
    sign_in(client)
    other = app.test_client()
    sign_in(other)
    assert page_lang(other, headers={"Accept-Language": "zh-TW"}) == "pt"


def test_the_users_stored_choice_wins_over_this_browsers_cookie(app, client):
    make_user(app)
    sign_in(client)
    switch(client, "pt")
    other = app.test_client()
    switch(other, "zh_Hant")
    sign_in(other)
    assert page_lang(other) == "pt"


# --- on every page ------------------------------------------------------------------------

PAGES = ["/", "/recovery/", "/recovery/identify/student", "/sso/sign-in", "/admin/",
         "/no-such-page"]


@pytest.mark.parametrize("url", PAGES)
def test_the_switcher_is_on_every_page(client, url):
    answer = client.get(url, headers={"Accept-Language": "zh-MO"}, follow_redirects=True)
    body = answer.get_data(as_text=True)
    assert html_lang(answer) == "zh-Hant", url
    assert 'action="/language"' in body and "繁體中文" in body and "Português" in body, url
    assert answer.headers["Content-Language"] == "zh-Hant"


@pytest.mark.parametrize("settings_overrides", [{"recovery_host": RECOVERY_HOST,
                                                 "base_url": "https://2fa.example.edu"}])
def test_the_switcher_works_on_the_recovery_host(app, client):
    on_host = {"base_url": f"http://{RECOVERY_HOST}"}
    body = client.get("/identify/staff", **on_host).get_data(as_text=True)
    assert 'action="/language"' in body
    assert 'name="next" value="/identify/staff"' in body  # its own address on that host
    token = csrf_token(client, f"http://{RECOVERY_HOST}/")
    answer = client.post("/language", data={"csrf_token": token, "language": "zh_Hant",
                                            "next": "/identify/staff"}, **on_host)
    assert answer.status_code == 303
    assert answer.headers["Location"] in ("/identify/staff",
                                          f"http://{RECOVERY_HOST}/identify/staff")
    assert page_lang(client, "/identify/staff", **on_host) == "zh-Hant"
    assert page_lang(client, "/", **on_host) == "zh-Hant"
    # A `next` that is not of this host's pages: its start page.
    answer = client.post("/language", data={"csrf_token": token, "language": "pt",
                                            "next": "//evil.example"}, **on_host)
    assert answer.headers["Location"] in ("/", f"http://{RECOVERY_HOST}/")
    assert page_lang(client, "/", **on_host) == "pt"


# --- the settings -------------------------------------------------------------------------

@pytest.mark.parametrize("settings_overrides", [{"languages": ("en", "pt")}])
def test_languages_not_offered_are_neither_shown_nor_chosen(client):
    body = client.get("/").get_data(as_text=True)
    assert "Português" in body and "繁體中文" not in body
    assert page_lang(client, headers={"Accept-Language": "zh-TW"}) == "en"
    switch(client, "zh_Hant")
    assert client.get_cookie(COOKIE) is None
    client.set_cookie(COOKIE, "zh_Hant")
    assert page_lang(client) == "en"


@pytest.mark.parametrize("settings_overrides", [{"languages": ("en", "zh_Hant", "pt"),
                                                 "default_language": "zh_Hant"}])
def test_the_default_language_speaks_when_the_browser_asks_for_none_we_have(client):
    assert page_lang(client, headers={"Accept-Language": "fr, de;q=0.5"}) == "zh-Hant"
    assert page_lang(client) == "zh-Hant"
    assert page_lang(client, headers={"Accept-Language": "en-GB"}) == "en"


def _load(tmp_path, **env: str):
    return load_settings(environ={"UM2FA_INSTANCE_DIR": str(tmp_path), **env})


def test_language_settings_from_the_environment(tmp_path):
    settings = _load(tmp_path, UM2FA_LANGUAGES="en,pt", UM2FA_DEFAULT_LANGUAGE="pt")
    assert settings.languages == ("en", "pt") and settings.default_language == "pt"
    default = _load(tmp_path)
    assert default.languages == ("en", "zh_Hant", "pt") and default.default_language == "en"
    assert default.timezone == "Asia/Macau"


@pytest.mark.parametrize(("env", "message"), [
    ({"UM2FA_LANGUAGES": "en,fr"}, "UM2FA_LANGUAGES"),
    ({"UM2FA_LANGUAGES": "en,zh-CN"}, "UM2FA_LANGUAGES"),
    ({"UM2FA_DEFAULT_LANGUAGE": "fr"}, "UM2FA_DEFAULT_LANGUAGE"),
    ({"UM2FA_LANGUAGES": "en,pt", "UM2FA_DEFAULT_LANGUAGE": "zh_Hant"},
     "UM2FA_DEFAULT_LANGUAGE"),
])
def test_the_config_check_refuses_languages_we_do_not_have(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, **env)


# --- local times --------------------------------------------------------------------------

WHEN = datetime(2026, 12, 6, 15, 26, tzinfo=UTC)  # 23:26 in Macau, the same day


# Macau's formats (CLDR's en_MO, zh_Hant_MO, pt_MO) all write a 12-hour clock.
@pytest.mark.parametrize(("language", "clock", "day"), [
    ("en", "11:26", "6"), ("zh_Hant", "11:26", "6"), ("pt", "11:26", "6")])
def test_local_times_are_macau_times_in_each_language(app, language, clock, day):
    with app.app_context(), use_language(language):
        shown = local(WHEN)
        assert clock in shown and day in shown and "2026" in shown, shown
        assert clock in local_clock(WHEN)
        assert "2026" in local_date(WHEN)
        assert local_iso(WHEN) == "2026-12-06T23:26:00+08:00"
        assert "+08:00" in zone() or "+8" in zone(), zone()


def test_local_times_speak_each_language(app):
    with app.app_context():
        with use_language("en"):
            assert local(WHEN) != local(datetime(2026, 12, 6, 3, 26, tzinfo=UTC))
            assert "pm" in local_clock(WHEN).lower()
            assert "Dec" in local(WHEN)
        with use_language("zh_Hant"):
            assert "下午" in local_clock(WHEN) or "晚上" in local_clock(WHEN)
            assert "12月" in local(WHEN) and "年" in local_date(WHEN)
        with use_language("pt"):
            assert "dezembro" in local_date(WHEN)


def test_a_utc_midnight_crossing_is_the_next_day_in_macau(app):
    late = datetime(2026, 12, 31, 20, 0, tzinfo=UTC)  # 04:00 on 1 January in Macau
    naive = datetime(2026, 12, 31, 20, 0)  # naive: taken as UTC
    with app.app_context(), use_language("pt"):
        assert "2027" in local_date(late) and "1 de janeiro" in local_date(late)
        assert local(naive) == local(late)


@pytest.mark.parametrize("written", ["en,zh_Hant,pt", "en, zh-Hant, pt", "EN,ZH_HANT,PT"])
def test_language_names_in_the_settings_keep_the_catalogs_case(tmp_path, written):
    settings = _load(tmp_path, UM2FA_LANGUAGES=written, UM2FA_DEFAULT_LANGUAGE="zh-hant")
    assert settings.languages == ("en", "zh_Hant", "pt")
    assert settings.default_language == "zh_Hant"


def test_a_language_added_later_is_found_by_its_primary_tag():
    from app.i18n.languages import from_accept_language

    offered = ("en", "zh_Hant", "pt", "ja")
    assert from_accept_language(["ja-JP", "en"], offered) == "ja"
    assert from_accept_language(["zh-CN", "zh-Hans", "ja"], offered) == "ja"
    assert from_accept_language(["*", "pt"], offered) == "pt"
