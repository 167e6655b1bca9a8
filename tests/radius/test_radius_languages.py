"""Issue 16: a RADIUS client's Reply-Messages are in its language (radius_clients.language;
None: UM2FA_DEFAULT_LANGUAGE). A live `um2fa radius`, a real pyrad client over UDP."""

from __future__ import annotations

import time

import pytest
from pyrad import packet as rp

from app.core import radius_auth
from app.i18n import _, use_language
from tests.conftest import PASSWORD, add_totp_device, make_user, totp_code
from tests.peers.live_radius import LiveRadius, make_env, reply_message

SECRET = "language-secret-0123456789"
# name, source address, language option
CLIENTS = [("english", "127.0.0.1", []), ("chinese", "127.0.0.6", ["--language", "zh_Hant"]),
           ("portuguese", "127.0.0.7", ["--language", "pt"])]
SOURCE = {name: source for name, source, _opts in CLIENTS}


@pytest.fixture
def radius(app, runner, tmp_path, database_url, settings_overrides):
    for name, source, options in CLIENTS:
        result = runner.invoke(args=["radius-clients", "add", name, "--address", source,
                                     "--secret", SECRET, *options])
        assert result.exit_code == 0, result.output
    env = make_env(tmp_path / "instance", database_url,
                   **{k: str(v) for k, v in settings_overrides.items()})
    server = LiveRadius(instance_dir=tmp_path / "instance", env=env).start()
    yield server
    server.stop()


def in_language(language: str, message: str, **params: str) -> str:
    with use_language(language):
        return _(message, **params)


def wrong_passcode(radius, client: str) -> rp.Packet:
    reply = radius.ask("alice", f"{PASSWORD},000000", secret=SECRET, source=SOURCE[client])
    assert reply is not None and reply.code == rp.AccessReject
    return reply


def test_a_wrong_passcode_is_refused_in_the_clients_language(app, radius):
    make_user(app)
    add_totp_device(app)
    chinese = reply_message(wrong_passcode(radius, "chinese"))
    assert chinese == in_language("zh_Hant", radius_auth.APPEND_FAILED, d=",")
    assert chinese.startswith("密碼或驗證碼不正確。") and "password,123456" in chinese
    portuguese = reply_message(wrong_passcode(radius, "portuguese"))
    assert portuguese.startswith("Palavra-passe ou código de acesso incorreto.")
    english = reply_message(wrong_passcode(radius, "english"))
    assert english == radius_auth.APPEND_FAILED % {"d": ","}


def test_a_success_message_in_chinese_names_the_device(app, radius):
    make_user(app)
    _device, secret = add_totp_device(app)
    reply = radius.ask("alice", f"{PASSWORD},{totp_code(secret, time.time())}", secret=SECRET,
                       source=SOURCE["chinese"])
    assert reply is not None and reply.code == rp.AccessAccept
    assert reply_message(reply) == "成功。已使用 Phone 登入。"


def test_the_cli_sets_lists_and_checks_the_language(app, runner):
    added = runner.invoke(args=["radius-clients", "add", "fw1", "--address", "10.0.0.5",
                                "--secret", SECRET, "--language", "pt"])
    assert added.exit_code == 0, added.output
    assert "\tlanguage pt" in runner.invoke(args=["radius-clients", "list"]).output
    changed = runner.invoke(args=["radius-clients", "set-language", "fw1", "zh_Hant"])
    assert changed.exit_code == 0 and "zh_Hant" in changed.output
    assert "\tlanguage zh_Hant" in runner.invoke(args=["radius-clients", "list"]).output
    assert runner.invoke(args=["radius-clients", "set-language", "fw1", "default"]).exit_code == 0
    assert "\tlanguage default" in runner.invoke(args=["radius-clients", "list"]).output
    refused = runner.invoke(args=["radius-clients", "set-language", "fw1", "klingon"])
    assert refused.exit_code != 0 and "the language must be one of" in refused.output
    unknown = runner.invoke(args=["radius-clients", "add", "fw2", "--address", "10.0.0.6",
                                  "--secret", SECRET, "--language", "klingon"])
    assert unknown.exit_code != 0


def test_the_wait_after_failed_passwords_is_counted_in_the_language(app):
    from app.core.radius_auth.guessing import wait_text

    with use_language("pt"):
        assert wait_text(1) == "1 segundo" and wait_text(30) == "30 segundos"
        assert wait_text(600) == "10 minutos"
    with use_language("zh_Hant"):
        assert wait_text(30) == "30 秒"
    assert wait_text(1) == "1 second" and wait_text(600) == "10 minutes"
