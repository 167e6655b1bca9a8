from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import AnyOf, InputRequired, Length, Regexp

from app.i18n import _l

PASSCODE_PATTERN = r"^\s*(\d\s*){6}$|^\s*(\d[\s-]*){9}$"


def parse_device_id(raw: str | None) -> int | None:
    """A device id as a form or query value carries it (ASCII digits, at most 9), else None."""
    raw = raw or ""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else None


class SignInForm(FlaskForm):
    username = StringField(_l("UMPASS ID"), validators=[
        InputRequired(_l("Enter your UMPASS ID.")), Length(max=64)])
    password = PasswordField(_l("UMPASS password"),
                             validators=[InputRequired(_l("Enter your password.")),
                                         Length(max=256)])


class PasscodeForm(FlaskForm):
    passcode = StringField(_l("Passcode"), validators=[
        InputRequired(_l("Enter a passcode.")),
        Regexp(PASSCODE_PATTERN, message=_l("A passcode has 6 digits (from your device) or 9 "
                                            "digits (a recovery passcode)."))])


class DevicePasscodeForm(PasscodeForm):
    """A passcode, optionally for one chosen device (checked by core, not by the form).

    No CSRF field of its own: the prompts' POSTs are checked by CSRFProtect before the view
    (app/extensions.py: csrf; tests/web/test_web_security.py), and the field would sign a
    new token at every POST (and check the token a second time) for a page that is shown
    only after an error. The prompt pages put `csrf_token()` in their form."""

    class Meta:
        csrf = False

    device = StringField(_l("Device"))


class ActivationForm(FlaskForm):
    passcode = StringField(_l("6-digit code"), validators=[
        InputRequired(_l("Enter the 6-digit code your app shows.")),
        Regexp(r"^\s*(\d\s*){6}$", message=_l("Enter the 6 digits your app shows."))])


class PlatformForm(FlaskForm):
    CHOICES = (("ios", "iOS"), ("android", "Android"))

    platform = StringField(_l("Platform"), validators=[
        InputRequired(_l("Choose iOS or Android.")),
        AnyOf([value for value, _label in CHOICES], message=_l("Choose iOS or Android."))])


class NameForm(FlaskForm):
    name = StringField(_l("Device name"), validators=[
        InputRequired(_l("Give the device a name.")),
        Length(max=40, message=_l("A device name has at most 40 characters."))])


class EmptyForm(FlaskForm):
    """CSRF protection for forms that carry nothing else."""
