"""app.packets: the server's Socket.IO packets find bytes exactly where python-socketio's own check does."""
from __future__ import annotations

import pytest
from socketio.packet import EVENT, Packet

from app.packets import FastCheckPacket


class Bytes(bytes):
    pass


@pytest.mark.parametrize("data", [
    ["result", {"seq": 1, "landmarks": [[0.5, 0.25, -0.01]] * 21, "top": [["A", 0.9]], "events": [], "hand": True}],
    ["speech", {"text": "HI", "audio": b"RIFF", "mime": "audio/wav"}],
    ["x", {"a": {"b": [1, None, True, bytearray(b"")]}}],
    ["x", [[[["deep", Bytes(b"")]]]]],
    ["x", ("a tuple", 1)],
    ["x", {"ok": "bytes"}],
    b"",
    "text",
])
def test_the_binary_check_agrees_with_python_socketios(data):
    assert FastCheckPacket.data_is_binary(data) == Packet.data_is_binary(data)
    assert FastCheckPacket(EVENT, data=data).encode() == Packet(EVENT, data=data).encode()
