"""Packets to core requests and core decisions to packets. No policy here: what a login means is
decided in app.core.radius_auth."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

from pyrad import packet as rp
from pyrad.dictionary import Dictionary

from app.core.radius_auth import AccessRequest, Decision, Outcome
from app.core.radius_clients import ClientConfig

MAX_PACKET = 4096
USER_NAME, USER_PASSWORD, CHAP_PASSWORD, NAS_IP_ADDRESS = 1, 2, 3, 4
STATE, NAS_IDENTIFIER, CALLING_STATION_ID, MESSAGE_AUTHENTICATOR = 24, 32, 31, 80
NAS_IPV6_ADDRESS = 95
SINGLE = (USER_NAME, USER_PASSWORD, CHAP_PASSWORD, STATE, MESSAGE_AUTHENTICATOR)
REPLY_CODES = {Outcome.ACCEPT: rp.AccessAccept, Outcome.REJECT: rp.AccessReject,
               Outcome.CHALLENGE: rp.AccessChallenge}


class Malformed(ValueError):
    """A packet we drop without an answer; the message names the fault for the log."""


def dictionary_path() -> Path:
    return Path(__file__).resolve().parent / "dictionary"


def load_dictionary() -> Dictionary:
    return Dictionary(str(dictionary_path()))


def check_framing(data: bytes) -> None:
    """RFC 2865 section 3 and 5: the header, the Length field and every attribute's length
    must be consistent. Octets beyond Length are padding and ignored."""
    if len(data) < 20:
        raise Malformed("shorter than a RADIUS header")
    length = struct.unpack("!H", data[2:4])[0]
    if length < 20 or length > MAX_PACKET or length > len(data):
        raise Malformed(f"bad Length field {length} for {len(data)} octets")
    pos, seen = 20, dict.fromkeys(SINGLE, 0)
    while pos < length:
        if pos + 2 > length:
            raise Malformed("truncated attribute header")
        code, attr_len = data[pos], data[pos + 1]
        if attr_len < 2 or pos + attr_len > length:
            raise Malformed(f"attribute {code} overflows the packet")
        if code in seen:
            seen[code] += 1
            if seen[code] > 1:
                raise Malformed(f"attribute {code} appears more than once")
        if code == MESSAGE_AUTHENTICATOR and attr_len != 18:
            raise Malformed("Message-Authenticator is not 16 octets")
        pos += attr_len


def _raw(pkt: rp.Packet, code: int) -> bytes | None:
    values = pkt.get(code)
    return bytes(values[0]) if values else None


def _text(raw: bytes | None, limit: int = 64) -> str:
    if not raw:
        return ""
    text = raw.decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]


def _nas_ip(pkt: rp.Packet) -> str:
    for code, size in ((NAS_IP_ADDRESS, 4), (NAS_IPV6_ADDRESS, 16)):
        raw = _raw(pkt, code)
        if raw is not None and len(raw) == size:
            return str(ipaddress.ip_address(raw))
    return ""


def access_request(pkt: rp.AuthPacket, client: ClientConfig, source: str) -> AccessRequest:
    """The core request for an authenticated Access-Request. The password stays in memory only."""
    name = _raw(pkt, USER_NAME)
    if not name:
        raise Malformed("no User-Name")
    try:
        username = name.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed("User-Name is not UTF-8") from exc
    if not username.isprintable():
        raise Malformed("User-Name has control characters")
    hidden = _raw(pkt, USER_PASSWORD)
    password = None
    if hidden is not None:
        if not 16 <= len(hidden) <= 128 or len(hidden) % 16:
            raise Malformed("User-Password length is not a multiple of 16 up to 128")
        password = pkt.PwDecrypt(hidden)
    nas_ip, nas_identifier = _nas_ip(pkt), _text(_raw(pkt, NAS_IDENTIFIER))
    # a proxy client's request gets its NAS's policy (core chooses: ClientConfig.for_nas)
    return AccessRequest(client=client.for_nas(nas_identifier, nas_ip), source=source,
                         username=username, password=password, state=_raw(pkt, STATE),
                         nas_ip=nas_ip, nas_identifier=nas_identifier,
                         calling_station=_text(_raw(pkt, CALLING_STATION_ID)))


def _chunks(message: str, size: int = 253) -> list[str]:
    """Reply-Message values of at most 253 octets each, cut between characters."""
    if len(message) * 4 <= size:  # short enough whatever its characters
        return [message] if message else []
    chunks, current = [], ""
    for char in message:
        if len((current + char).encode()) > size:
            chunks.append(current)
            current = ""
        current += char
    if current:
        chunks.append(current)
    return chunks


def _value(dictionary: Dictionary, name: str, value: str) -> str | int:
    attr = dictionary.attributes[name]
    if attr.type in ("integer", "short", "byte", "signed") and not attr.values.HasForward(value):
        return int(value)
    return value


def reply_packet(request: rp.AuthPacket, decision: Decision) -> bytes:
    """The signed reply: Response Authenticator and Message-Authenticator (BlastRADIUS)."""
    reply = request.CreateReply()
    reply.code = REPLY_CODES[decision.outcome]
    for chunk in _chunks(decision.message):
        reply.AddAttribute("Reply-Message", chunk)
    if decision.state is not None:
        reply.AddAttribute("State", decision.state)
    if decision.session_class is not None:
        reply.AddAttribute("Class", decision.session_class)
    for name, value in decision.attributes:
        reply.AddAttribute(name, _value(request.dict, name, value))
    return reply.ReplyPacket()


def status_reply(request: rp.AuthPacket) -> bytes:
    """RFC 5997: Status-Server is answered with an Access-Accept."""
    reply = request.CreateReply()
    reply.code = rp.AccessAccept
    reply.AddAttribute("Reply-Message", "UM 2FA RADIUS is up")
    return reply.ReplyPacket()


def check_attributes(dictionary: Dictionary,
                     table: dict[str, tuple[tuple[str, str], ...]]) -> None:
    """Fail at start-up, not on a user's login, when a configured reply attribute is unknown or
    its value does not fit its type."""
    for role, pairs in table.items():
        for name, value in pairs:
            if name not in dictionary.attributes:
                raise ValueError(f"radius_role_attributes.{role}: unknown attribute {name!r} "
                                 f"(known: see {dictionary_path()})")
            probe = rp.AuthPacket(code=rp.AccessAccept, secret=b"x", dict=dictionary,
                                  authenticator=b"\0" * 16)
            try:
                probe.AddAttribute(name, _value(dictionary, name, value))
                probe.ReplyPacket()
            except (ValueError, TypeError, struct.error) as exc:
                raise ValueError(f"radius_role_attributes.{role}.{name}: value {value!r} does "
                                 f"not fit the attribute") from exc
