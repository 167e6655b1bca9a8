from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import AnyOf, InputRequired, Length, Regexp

PASSCODE_PATTERN = r"^\s*(\d\s*){6}$|^\s*(\d[\s-]*){9}$"


def parse_device_id(raw: str | None) -> int | None:
    """A device id as a form or query value carries it (ASCII digits, at most 9), else None."""
    raw = raw or ""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else None


class SignInForm(FlaskForm):
    username = StringField("UMPASS ID", validators=[InputRequired("Enter your UMPASS ID."),
                                                    Length(max=64)])
    password = PasswordField("UMPASS password",
                             validators=[InputRequired("Enter your password."),
                                         Length(max=256)])


class PasscodeForm(FlaskForm):
    passcode = StringField("Passcode", validators=[
        InputRequired("Enter a passcode."),
        Regexp(PASSCODE_PATTERN, message="A passcode has 6 digits (from your device) or 9 digits "
                                         "(a recovery passcode).")])


class DevicePasscodeForm(PasscodeForm):
    """A passcode, optionally for one chosen device (checked by core, not by the form)."""

    device = StringField("Device")


class ActivationForm(FlaskForm):
    passcode = StringField("6-digit code", validators=[
        InputRequired("Enter the 6-digit code your app shows."),
        Regexp(r"^\s*(\d\s*){6}$", message="Enter the 6 digits your app shows.")])


class PlatformForm(FlaskForm):
    CHOICES = (("ios", "iOS"), ("android", "Android"))

    platform = StringField("Platform", validators=[
        InputRequired("Choose iOS or Android."),
        AnyOf([value for value, _ in CHOICES], message="Choose iOS or Android.")])


class NameForm(FlaskForm):
    name = StringField("Device name", validators=[
        InputRequired("Give the device a name."),
        Length(max=40, message="A device name has at most 40 characters.")])


class EmptyForm(FlaskForm):
    """CSRF protection for forms that carry nothing else."""
