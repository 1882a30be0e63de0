"""Wire primitives and topic rules, as pure functions."""

from __future__ import annotations

import pytest

from iotfin.transports.mqtt import codec
from iotfin.transports.mqtt.codec import MalformedPacket
from iotfin.transports.mqtt.topics import is_valid_topic_filter, is_valid_topic_name, topic_matches


@pytest.mark.parametrize("value, encoded", [
    (0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"), (16_384, b"\x80\x80\x01"),
    (2_097_151, b"\xff\xff\x7f"), (2_097_152, b"\x80\x80\x80\x01"), (268_435_455, b"\xff\xff\xff\x7f"),
])
def test_variable_byte_integer_vectors(value: int, encoded: bytes) -> None:  # MQTT 5 §1.5.5 table
    assert codec.encode_varint(value) == encoded
    assert codec.read_varint(encoded, 0, len(encoded)) == (value, len(encoded))


def test_variable_byte_integer_limits() -> None:
    with pytest.raises(ValueError):
        codec.encode_varint(268_435_456)
    with pytest.raises(MalformedPacket):
        codec.read_varint(b"\xff\xff\xff\xff\x01", 0, 5)
    with pytest.raises(MalformedPacket):
        codec.read_varint(b"\xff", 0, 1)


@pytest.mark.parametrize("raw", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"a\x00b", b"\xe2\x82"])
def test_utf8_string_rules(raw: bytes) -> None:  # ill-formed, overlong, surrogate, U+0000, truncated sequence
    data = len(raw).to_bytes(2, "big") + raw
    with pytest.raises(MalformedPacket):
        codec.read_utf8(data, 0, len(data))


def test_utf8_string_round_trip() -> None:
    data = codec.encode_utf8("v1/设备/温度/🌡")
    assert codec.read_utf8(data, 0, len(data)) == ("v1/设备/温度/🌡", len(data))
    with pytest.raises(MalformedPacket):
        codec.read_utf8(data, 0, len(data) - 1)


def test_properties_round_trip_and_rules() -> None:
    block = codec.encode_properties([(codec.SESSION_EXPIRY_INTERVAL, 3600), (codec.RECEIVE_MAXIMUM, 10),
                                     (codec.USER_PROPERTY, ("a", "b")), (codec.USER_PROPERTY, ("a", "c"))])
    props, end = codec.read_properties(block, 0, len(block), codec.CONNECT)
    assert end == len(block)
    assert props == {codec.SESSION_EXPIRY_INTERVAL: 3600, codec.RECEIVE_MAXIMUM: 10,
                     codec.USER_PROPERTY: [("a", "b"), ("a", "c")]}
    not_allowed = codec.encode_properties([(codec.TOPIC_ALIAS, 1)])
    with pytest.raises(MalformedPacket) as refused:
        codec.read_properties(not_allowed, 0, len(not_allowed), codec.CONNECT)
    assert refused.value.reason_code == 0x82


@pytest.mark.parametrize("topic_filter, topic, matches", [
    ("v1/devices/me/rpc/request/+", "v1/devices/me/rpc/request/42", True),
    ("v1/devices/me/rpc/request/+", "v1/devices/me/rpc/request/42/x", False),
    ("v1/devices/me/rpc/request/+", "v1/devices/me/rpc/request", False),
    ("v1/devices/me/attributes", "v1/devices/me/attributes", True),
    ("v1/devices/me/attributes", "v1/devices/me/attributes/response/1", False),
    ("v1/devices/me/attributes/response/+", "v1/devices/me/attributes/response/1", True),
    ("sport/#", "sport", True), ("sport/#", "sport/tennis/player1", True), ("#", "a/b", True),
    ("+/+", "/finance", True), ("/+", "/finance", True), ("+", "/finance", False),
    ("#", "$SYS/x", False), ("+/x", "$SYS/x", False), ("$SYS/#", "$SYS/x", True),
])
def test_topic_matching(topic_filter: str, topic: str, matches: bool) -> None:  # MQTT 5 §4.7 examples
    assert is_valid_topic_filter(topic_filter)
    assert topic_matches(topic_filter, topic) is matches


def test_topic_validation() -> None:
    assert not is_valid_topic_filter("sport/tennis#") and not is_valid_topic_filter("sport/#/x")
    assert not is_valid_topic_filter("sport+") and not is_valid_topic_filter("")
    assert is_valid_topic_filter("+") and is_valid_topic_filter("+/tennis/#")
    assert is_valid_topic_name("a/b") and not is_valid_topic_name("a/+") and not is_valid_topic_name("")


def test_connect_parsing() -> None:
    body = (codec.encode_utf8("MQTT") + b"\x05\xc2\x00\x3c" + codec.encode_properties([(codec.RECEIVE_MAXIMUM, 5)])
            + codec.encode_utf8("dev-1") + codec.encode_utf8("user") + b"\x00\x03pw\x00")
    packet = codec.parse_connect(body, 0, len(body))
    assert (packet.protocol_level, packet.clean_start, packet.keep_alive, packet.client_id) == (5, True, 60, "dev-1")
    assert (packet.username, packet.password, packet.properties) == ("user", b"pw\x00", {codec.RECEIVE_MAXIMUM: 5})
    with pytest.raises(MalformedPacket):
        codec.parse_connect(body + b"x", 0, len(body) + 1)  # trailing bytes
