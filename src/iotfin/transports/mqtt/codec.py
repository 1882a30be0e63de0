"""MQTT 3.1.1 and 5.0 wire format: pure functions between bytes and packets, no I/O.

Decoders take the whole stream buffer and the bounds of one packet's body (the bytes after the fixed
header), so nothing is copied but the strings and the payload the caller keeps. Any breach of the
wire rules raises `MalformedPacket`, carrying the MQTT 5 reason code to disconnect with.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from iotfin.transports.mqtt import reason_codes as rc

# Control packet types (high nibble of the first byte)
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

MQTT_311 = 4
MQTT_5 = 5

MAX_VARINT = 268_435_455  # the largest Variable Byte Integer (4 bytes)

PINGRESP_PACKET = b"\xd0\x00"

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_PUBACK_SHORT = struct.Struct("!BBH")
_PUBACK_REASON = struct.Struct("!BBHB")


class MalformedPacket(Exception):
    """The bytes break the MQTT rules. The connection closes (MQTT 5: after DISCONNECT with `reason_code`)."""

    def __init__(self, message: str, reason_code: int = rc.MALFORMED_PACKET):
        super().__init__(message)
        self.reason_code = reason_code


class UnsupportedProtocol(MalformedPacket):
    """A CONNECT for a protocol level other than 4 (3.1.1) or 5; refused with CONNACK before anything else."""

    def __init__(self, level: int):
        super().__init__(f"unsupported protocol level {level}", rc.UNSUPPORTED_PROTOCOL_VERSION)
        self.level = level


# --- primitives -----------------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    if value > MAX_VARINT:
        raise ValueError(f"{value} does not fit a Variable Byte Integer")
    out = bytearray()
    while True:
        digit, value = value & 0x7F, value >> 7
        if value:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """A Variable Byte Integer inside a packet body: (value, position after it)."""
    value = 0
    shift = 0
    while True:
        if pos >= end:
            raise MalformedPacket("truncated variable byte integer")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise MalformedPacket("variable byte integer longer than 4 bytes")


def read_u16(buf: bytes, pos: int, end: int) -> int:
    if pos + 2 > end:
        raise MalformedPacket("truncated two byte integer")
    return (buf[pos] << 8) | buf[pos + 1]


def read_binary(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """Binary Data: a two byte length and that many bytes."""
    size = read_u16(buf, pos, end)
    pos += 2
    if pos + size > end:
        raise MalformedPacket("truncated binary data")
    return bytes(buf[pos:pos + size]), pos + size


def read_utf8(buf: bytes, pos: int, end: int) -> tuple[str, int]:
    """A UTF-8 Encoded String: well-formed UTF-8 (no surrogates, no overlongs) without U+0000."""
    size = read_u16(buf, pos, end)
    pos += 2
    if pos + size > end:
        raise MalformedPacket("truncated UTF-8 string")
    try:
        text = str(buf[pos:pos + size], "utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPacket("ill-formed UTF-8 string") from exc
    if "\x00" in text:
        raise MalformedPacket("UTF-8 string contains U+0000")
    return text, pos + size


def encode_utf8(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("UTF-8 string longer than 65535 bytes")
    return _U16.pack(len(raw)) + raw


def fixed_header(first_byte: int, remaining_length: int) -> bytes:
    return bytes((first_byte,)) + encode_varint(remaining_length)


# --- MQTT 5 properties ----------------------------------------------------------------------------

_BYTE, _U16_T, _U32_T, _VARINT, _UTF8, _BINARY, _PAIR = range(7)

PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_IDENTIFIER = 0x0B
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTHENTICATION_METHOD = 0x15
AUTHENTICATION_DATA = 0x16
REQUEST_PROBLEM_INFORMATION = 0x17
WILL_DELAY_INTERVAL = 0x18
REQUEST_RESPONSE_INFORMATION = 0x19
RESPONSE_INFORMATION = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
SHARED_SUBSCRIPTION_AVAILABLE = 0x2A

_PROPERTY_TYPES = {
    PAYLOAD_FORMAT_INDICATOR: _BYTE, MESSAGE_EXPIRY_INTERVAL: _U32_T, CONTENT_TYPE: _UTF8,
    RESPONSE_TOPIC: _UTF8, CORRELATION_DATA: _BINARY, SUBSCRIPTION_IDENTIFIER: _VARINT,
    SESSION_EXPIRY_INTERVAL: _U32_T, ASSIGNED_CLIENT_IDENTIFIER: _UTF8, SERVER_KEEP_ALIVE: _U16_T,
    AUTHENTICATION_METHOD: _UTF8, AUTHENTICATION_DATA: _BINARY, REQUEST_PROBLEM_INFORMATION: _BYTE,
    WILL_DELAY_INTERVAL: _U32_T, REQUEST_RESPONSE_INFORMATION: _BYTE, RESPONSE_INFORMATION: _UTF8,
    SERVER_REFERENCE: _UTF8, REASON_STRING: _UTF8, RECEIVE_MAXIMUM: _U16_T, TOPIC_ALIAS_MAXIMUM: _U16_T,
    TOPIC_ALIAS: _U16_T, MAXIMUM_QOS: _BYTE, RETAIN_AVAILABLE: _BYTE, USER_PROPERTY: _PAIR,
    MAXIMUM_PACKET_SIZE: _U32_T, WILDCARD_SUBSCRIPTION_AVAILABLE: _BYTE,
    SUBSCRIPTION_IDENTIFIER_AVAILABLE: _BYTE, SHARED_SUBSCRIPTION_AVAILABLE: _BYTE,
}

# Properties a client may send, per packet type (anything else there is a protocol error)
_ALLOWED_FROM_CLIENT = {
    CONNECT: frozenset({SESSION_EXPIRY_INTERVAL, AUTHENTICATION_METHOD, AUTHENTICATION_DATA,
                        REQUEST_PROBLEM_INFORMATION, REQUEST_RESPONSE_INFORMATION, RECEIVE_MAXIMUM,
                        TOPIC_ALIAS_MAXIMUM, USER_PROPERTY, MAXIMUM_PACKET_SIZE}),
    "will": frozenset({PAYLOAD_FORMAT_INDICATOR, MESSAGE_EXPIRY_INTERVAL, CONTENT_TYPE, RESPONSE_TOPIC,
                       CORRELATION_DATA, WILL_DELAY_INTERVAL, USER_PROPERTY}),
    PUBLISH: frozenset({PAYLOAD_FORMAT_INDICATOR, MESSAGE_EXPIRY_INTERVAL, CONTENT_TYPE, RESPONSE_TOPIC,
                        CORRELATION_DATA, TOPIC_ALIAS, USER_PROPERTY, SUBSCRIPTION_IDENTIFIER}),
    PUBACK: frozenset({REASON_STRING, USER_PROPERTY}),
    PUBREL: frozenset({REASON_STRING, USER_PROPERTY}),
    SUBSCRIBE: frozenset({SUBSCRIPTION_IDENTIFIER, USER_PROPERTY}),
    UNSUBSCRIBE: frozenset({USER_PROPERTY}),
    DISCONNECT: frozenset({SESSION_EXPIRY_INTERVAL, REASON_STRING, USER_PROPERTY, SERVER_REFERENCE}),
}

Properties = dict[int, object]


def read_properties(buf: bytes, pos: int, end: int, packet: int | str) -> tuple[Properties | None, int]:
    """An MQTT 5 property block: ({id: value}, position after it); user properties collect in a list."""
    size, pos = read_varint(buf, pos, end)
    stop = pos + size
    if stop > end:
        raise MalformedPacket("property length beyond the packet")
    if size == 0:
        return None, pos
    allowed = _ALLOWED_FROM_CLIENT[packet]
    props: Properties = {}
    while pos < stop:
        ident, pos = read_varint(buf, pos, stop)
        kind = _PROPERTY_TYPES.get(ident)
        if kind is None:
            raise MalformedPacket(f"unknown property 0x{ident:02x}")
        if ident not in allowed:
            raise MalformedPacket(f"property 0x{ident:02x} not allowed here", rc.PROTOCOL_ERROR)
        value: object
        if kind == _BYTE:
            if pos >= stop:
                raise MalformedPacket("truncated property")
            value, pos = buf[pos], pos + 1
        elif kind == _U16_T:
            value, pos = read_u16(buf, pos, stop), pos + 2
        elif kind == _U32_T:
            if pos + 4 > stop:
                raise MalformedPacket("truncated property")
            value, pos = _U32.unpack_from(buf, pos)[0], pos + 4
        elif kind == _VARINT:
            value, pos = read_varint(buf, pos, stop)
        elif kind == _UTF8:
            value, pos = read_utf8(buf, pos, stop)
        elif kind == _BINARY:
            value, pos = read_binary(buf, pos, stop)
        else:
            name, pos = read_utf8(buf, pos, stop)
            text, pos = read_utf8(buf, pos, stop)
            pairs = props.setdefault(USER_PROPERTY, [])
            assert isinstance(pairs, list)
            pairs.append((name, text))
            continue
        if ident in props:  # every property but User Property appears at most once
            raise MalformedPacket(f"property 0x{ident:02x} repeated", rc.PROTOCOL_ERROR)
        props[ident] = value
    return props, pos


def encode_properties(props: list[tuple[int, object]]) -> bytes:
    out = bytearray()
    for ident, value in props:
        kind = _PROPERTY_TYPES[ident]
        out += encode_varint(ident)
        if kind == _BYTE:
            out.append(int(value))  # type: ignore[call-overload]
        elif kind == _U16_T:
            out += _U16.pack(value)
        elif kind == _U32_T:
            out += _U32.pack(value)
        elif kind == _VARINT:
            out += encode_varint(int(value))  # type: ignore[call-overload]
        elif kind == _UTF8:
            out += encode_utf8(str(value))
        elif kind == _BINARY:
            assert isinstance(value, bytes)
            out += _U16.pack(len(value)) + value
        else:
            name, text = value  # type: ignore[misc]
            out += encode_utf8(name) + encode_utf8(text)
    return encode_varint(len(out)) + bytes(out)


# --- client -> server packets ---------------------------------------------------------------------


@dataclass(slots=True)
class Connect:
    protocol_level: int
    clean_start: bool
    keep_alive: int
    client_id: str
    username: str | None = None
    password: bytes | None = None
    will_topic: str | None = None
    will_qos: int = 0
    properties: Properties = field(default_factory=dict)


def parse_connect(buf: bytes, pos: int, end: int) -> Connect:
    name, pos = read_utf8(buf, pos, end)
    if pos >= end:
        raise MalformedPacket("truncated CONNECT")
    level = buf[pos]
    pos += 1
    if name not in ("MQTT", "MQIsdp"):
        raise MalformedPacket(f"unknown protocol name {name!r}", rc.UNSUPPORTED_PROTOCOL_VERSION)
    if level not in (MQTT_311, MQTT_5) or name != "MQTT":
        raise UnsupportedProtocol(level)
    if pos + 3 > end:
        raise MalformedPacket("truncated CONNECT")
    flags = buf[pos]
    keep_alive = read_u16(buf, pos + 1, end)
    pos += 3
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag set")
    will, will_qos, will_retain = flags & 0x04, (flags >> 3) & 0x03, flags & 0x20
    has_password, has_username = flags & 0x40, flags & 0x80
    if will_qos == 3 or (not will and (will_qos or will_retain)):
        raise MalformedPacket("invalid will flags")
    if level == MQTT_311 and has_password and not has_username:
        raise MalformedPacket("password flag without user name flag")
    props: Properties | None = None
    if level == MQTT_5:
        props, pos = read_properties(buf, pos, end, CONNECT)
        if props and (props.get(RECEIVE_MAXIMUM) == 0 or props.get(MAXIMUM_PACKET_SIZE) == 0):
            raise MalformedPacket("receive maximum or maximum packet size of 0", rc.PROTOCOL_ERROR)
    client_id, pos = read_utf8(buf, pos, end)
    packet = Connect(level, bool(flags & 0x02), keep_alive, client_id, properties=props or {})
    if will:
        if level == MQTT_5:
            _, pos = read_properties(buf, pos, end, "will")
        packet.will_topic, pos = read_utf8(buf, pos, end)
        _, pos = read_binary(buf, pos, end)  # the will payload; wills are not published (see server)
        packet.will_qos = will_qos
    if has_username:
        packet.username, pos = read_utf8(buf, pos, end)
    if has_password:
        packet.password, pos = read_binary(buf, pos, end)
    if pos != end:
        raise MalformedPacket("bytes after the CONNECT payload")
    return packet


def parse_publish(buf: bytes, pos: int, end: int, flags: int, v5: bool) -> tuple[str, int, bytes, Properties | None]:
    """(topic, packet id or 0, payload, properties) of a PUBLISH whose QoS the caller checked."""
    topic, pos = read_utf8(buf, pos, end)
    packet_id = 0
    if flags & 0x06:
        packet_id = read_u16(buf, pos, end)
        pos += 2
        if packet_id == 0:
            raise MalformedPacket("PUBLISH with packet identifier 0")
    props = None
    if v5:
        props, pos = read_properties(buf, pos, end, PUBLISH)
    return topic, packet_id, bytes(buf[pos:end]), props


def parse_subscribe(buf: bytes, pos: int, end: int, v5: bool) -> tuple[int, list[tuple[str, int]], Properties | None]:
    """(packet id, [(topic filter, requested QoS)], properties)."""
    packet_id = read_u16(buf, pos, end)
    pos += 2
    if packet_id == 0:
        raise MalformedPacket("SUBSCRIBE with packet identifier 0")
    props = None
    if v5:
        props, pos = read_properties(buf, pos, end, SUBSCRIBE)
    filters = []
    # v5 options: QoS bits 0-1, No Local 2, Retain As Published 3, Retain Handling 4-5; 3.1.1: QoS only
    reserved = 0xC0 if v5 else 0xFC
    while pos < end:
        topic_filter, pos = read_utf8(buf, pos, end)
        if pos >= end:
            raise MalformedPacket("SUBSCRIBE filter without options")
        options = buf[pos]
        pos += 1
        if options & reserved or options & 0x03 == 3 or (options >> 4) & 0x03 == 3:
            raise MalformedPacket("SUBSCRIBE options reserved bits set")
        filters.append((topic_filter, options & 0x03))
    if not filters:
        raise MalformedPacket("SUBSCRIBE without a topic filter", rc.PROTOCOL_ERROR)
    return packet_id, filters, props


def parse_unsubscribe(buf: bytes, pos: int, end: int, v5: bool) -> tuple[int, list[str]]:
    packet_id = read_u16(buf, pos, end)
    pos += 2
    if packet_id == 0:
        raise MalformedPacket("UNSUBSCRIBE with packet identifier 0")
    if v5:
        _, pos = read_properties(buf, pos, end, UNSUBSCRIBE)
    filters = []
    while pos < end:
        topic_filter, pos = read_utf8(buf, pos, end)
        filters.append(topic_filter)
    if not filters:
        raise MalformedPacket("UNSUBSCRIBE without a topic filter", rc.PROTOCOL_ERROR)
    return packet_id, filters


def parse_ack(buf: bytes, pos: int, end: int, packet: int, v5: bool) -> tuple[int, int]:
    """(packet id, reason code) of a PUBACK or PUBREL."""
    packet_id = read_u16(buf, pos, end)
    pos += 2
    if not v5:
        if pos != end:
            raise MalformedPacket("bytes after the packet identifier")
        return packet_id, 0
    reason = 0
    if pos < end:
        reason = buf[pos]
        if pos + 1 < end:
            _, after = read_properties(buf, pos + 1, end, packet)
            if after != end:
                raise MalformedPacket("bytes after the properties")
    return packet_id, reason


def parse_disconnect(buf: bytes, pos: int, end: int, v5: bool) -> int:
    """The reason code of a client's DISCONNECT (0 when absent)."""
    if pos == end:
        return 0
    if not v5:
        raise MalformedPacket("MQTT 3.1.1 DISCONNECT with a body")
    reason = buf[pos]
    if pos + 1 < end:
        _, after = read_properties(buf, pos + 1, end, DISCONNECT)
        if after != end:
            raise MalformedPacket("bytes after the properties")
    return reason


# --- server -> client packets ---------------------------------------------------------------------


def encode_connack(v5: bool, code: int, session_present: bool = False,
                   props: list[tuple[int, object]] | None = None) -> bytes:
    if not v5:
        return bytes((0x20, 2, int(session_present), code))
    body = bytes((int(session_present), code)) + encode_properties(props or [])
    return fixed_header(0x20, len(body)) + body


def encode_puback(packet_id: int, code: int = 0, kind: int = PUBACK) -> bytes:
    """PUBACK (or PUBREC); the reason code is left out on success, as MQTT 5 allows (same bytes as 3.1.1)."""
    if code == 0:
        return _PUBACK_SHORT.pack(kind << 4, 2, packet_id)
    return _PUBACK_REASON.pack(kind << 4, 3, packet_id, code)


def encode_pubcomp(packet_id: int, code: int = 0) -> bytes:
    return encode_puback(packet_id, code, PUBCOMP)


def encode_suback(v5: bool, packet_id: int, codes: list[int]) -> bytes:
    body = _U16.pack(packet_id) + (b"\x00" if v5 else b"") + bytes(codes)
    return fixed_header(0x90, len(body)) + body


def encode_unsuback(v5: bool, packet_id: int, codes: list[int]) -> bytes:
    body = _U16.pack(packet_id) + (b"\x00" + bytes(codes) if v5 else b"")
    return fixed_header(0xB0, len(body)) + body


def encode_disconnect(code: int, reason: str | None = None) -> bytes:
    """An MQTT 5 DISCONNECT from the server (3.1.1 has none: the server just closes)."""
    if code == 0 and not reason:
        return b"\xe0\x00"
    body = bytes((code,)) + encode_properties([(REASON_STRING, reason)] if reason else [])
    return fixed_header(0xE0, len(body)) + body


def encode_publish(topic: str, payload: bytes, qos: int, packet_id: int, v5: bool) -> bytes:
    head = encode_utf8(topic)
    if qos:
        head += _U16.pack(packet_id)
    if v5:
        head += b"\x00"  # no properties
    return fixed_header(0x30 | (qos << 1), len(head) + len(payload)) + head + payload
