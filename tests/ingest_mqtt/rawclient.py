"""A byte-level MQTT client for tests, written from the specification independently of the server's codec."""

from __future__ import annotations

import socket
import struct
import time


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect(client_id: str = "raw", level: int = 4, username: str | None = "dev-raw", password: bytes | None = None,
            keep_alive: int = 60, clean: bool = True, props: bytes = b"") -> bytes:
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = utf8("MQTT") + bytes([level, flags]) + struct.pack("!H", keep_alive)
    if level == 5:
        body += varint(len(props)) + props
    body += utf8(client_id)
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += utf8(password)
    return packet(0x10, body)


def publish(topic: str | bytes, payload: bytes, qos: int = 0, packet_id: int = 0, level: int = 4,
            props: bytes = b"", dup: bool = False) -> bytes:
    body = utf8(topic) + (struct.pack("!H", packet_id) if qos else b"")
    if level == 5:
        body += varint(len(props)) + props
    return packet(0x30 | (0x08 if dup else 0) | (qos << 1), body + payload)


def subscribe(packet_id: int, filters: list[tuple[str, int]], level: int = 4) -> bytes:
    body = struct.pack("!H", packet_id) + (b"\x00" if level == 5 else b"")
    for topic_filter, options in filters:
        body += utf8(topic_filter) + bytes([options])
    return packet(0x82, body)


def unsubscribe(packet_id: int, filters: list[str], level: int = 4) -> bytes:
    body = struct.pack("!H", packet_id) + (b"\x00" if level == 5 else b"")
    for topic_filter in filters:
        body += utf8(topic_filter)
    return packet(0xA2, body)


PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"


class RawClient:
    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, n: int) -> bool:
        while len(self.buffer) < n:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read(self) -> tuple[int, bytes] | None:
        """The next packet as (first byte, body), or None when the server closed the connection."""
        if not self._fill(2):
            return None
        i, length, shift = 1, 0, 0
        while True:
            if not self._fill(i + 1):
                return None
            byte = self.buffer[i]
            i += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if not self._fill(i + length):
            return None
        first, body = self.buffer[0], self.buffer[i:i + length]
        self.buffer = self.buffer[i + length:]
        return first, body

    def expect(self, first: int) -> bytes:
        got = self.read()
        assert got is not None, f"connection closed while expecting 0x{first:02x}"
        assert got[0] == first, f"expected packet 0x{first:02x}, got 0x{got[0]:02x} {got[1]!r}"
        return got[1]

    def handshake(self, **options: object) -> bytes:
        """CONNECT and the CONNACK body, asserting success."""
        self.send(connect(**options))  # type: ignore[arg-type]
        body = self.expect(0x20)
        assert body[1] == 0, f"CONNACK refused: {body!r}"
        return body

    def closed(self, timeout: float = 5.0) -> bool:
        """Whether the server closes the connection within `timeout` (packets before that are skipped)."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return True
            except TimeoutError:
                return False
            if not chunk:
                return True
            self.buffer += chunk
        return False
