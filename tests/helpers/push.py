"""A companion app activated and answering through core (the push tests)."""

from __future__ import annotations

from app.core import devices, push, users
from tests.conftest import TEST_ORIGIN
from tests.peers.push_device import PushDevice, activation_string, answer_string


def new_phone(ctx, username: str = "alice", name: str = "") -> tuple[PushDevice, int]:
    """A companion app activated through core (the API's tests go through HTTP)."""
    user = users.get(ctx, username)
    device = devices.begin_enrolment(ctx, TEST_ORIGIN, user, "mobile", "android", kind="push")
    code = push.new_activation(ctx, device)
    phone = PushDevice(transport=None)  # type: ignore[arg-type] - signs only
    done = push.activate(ctx, TEST_ORIGIN, code, phone.public_key,
                         phone.sign(activation_string(code)), None)
    if name:
        done.device.name = name
    ctx.db.commit()
    return phone, done.device.id


def answer(ctx, phone: PushDevice, device_id: int, public_id: str, decision: str,
           number: str = "") -> str:
    device = ctx.db.get(devices.Device, device_id)
    return push.answer(ctx, TEST_ORIGIN, device, public_id, decision, number,
                       phone.sign(answer_string(public_id, decision, number)))
