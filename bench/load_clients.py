"""Many streaming Socket.IO clients in ONE thread: the load generator of bench.load.

A python-socketio client per streaming client (its reader and ping threads, its own event dispatch) cost the bench
~1.3-1.5 ms of CPU a frame: 0.3 of the 2 cores at 200-300 frames a second, taken from the server it measures.
A browser spends that on its own device. Here every client is a plain socket with the protocol written out,
the part a client needs of it: the WebSocket upgrade, the Engine.IO open and ping/pong, Socket.IO's connect to
the default namespace, `frame` events sent as text messages and `result`/`error` events read (each reply parsed
as JSON, as a page would). One selector serves all of them, so the clients cost ~0.1 ms a frame.

Each client behaves like the page: a frame every 1/fps s, at most 2 in flight (a frame due while 2 are in flight
is dropped, counted as dropped by backpressure), a frame unanswered after 2 s is counted an error and frees its
slot. Clients may connect from distinct loopback addresses (127.0.k.1): nginx's ip_hash keys on an IPv4 address's
first three octets, so a cluster spreads them over its servers as it would spread people.
"""
from __future__ import annotations

import base64
import heapq
import json
import os
import selectors
import socket
import time
from urllib.parse import urlsplit

MAX_IN_FLIGHT = 2
LOST_AFTER_S = 2.0
CONNECT_TIMEOUT_S = 15.0


class ProtocolError(RuntimeError):
    pass


def ws_frame(payload: str | bytes) -> bytes:
    """A client's WebSocket frame (FIN; text for a str, binary for bytes), masked as the protocol requires."""
    opcode = 1 if isinstance(payload, str) else 2
    payload = payload.encode() if isinstance(payload, str) else payload
    n = len(payload)
    header = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
                              if n < 65536 else bytes([0x80 | 127]) + n.to_bytes(8, "big"))
    mask = os.urandom(4)
    keystream = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big") if n else b""
    return header + mask + masked


def event_messages(event: str, data: dict) -> list[str | bytes]:
    """The WebSocket messages of a Socket.IO event: one text message, or with bytes in `data` (an image frame) a
    binary event whose attachments follow as binary messages."""
    attachments: list[bytes] = []

    def placeholders(value):
        if isinstance(value, (bytes, bytearray)):
            attachments.append(bytes(value))
            return {"_placeholder": True, "num": len(attachments) - 1}
        if isinstance(value, dict):
            return {k: placeholders(v) for k, v in value.items()}
        if isinstance(value, list):
            return [placeholders(v) for v in value]
        return value

    body = json.dumps([event, placeholders(data)])
    return [f"45{len(attachments)}-{body}", *attachments] if attachments else ["42" + body]


def ws_messages(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Whole (opcode, payload) messages at the front of `buffer` (a server's frames: unmasked, unfragmented),
    removed from it; a partial frame stays for the next read."""
    out, pos = [], 0
    while len(buffer) - pos >= 2:
        opcode, n = buffer[pos] & 0x0F, buffer[pos + 1] & 0x7F
        head = 2
        if n == 126:
            if len(buffer) - pos < 4:
                break
            n, head = int.from_bytes(buffer[pos + 2:pos + 4], "big"), 4
        elif n == 127:
            if len(buffer) - pos < 10:
                break
            n, head = int.from_bytes(buffer[pos + 2:pos + 10], "big"), 10
        if len(buffer) - pos < head + n:
            break
        out.append((opcode, bytes(buffer[pos + head:pos + head + n])))
        pos += head + n
    del buffer[:pos]
    return out


class Client:
    """One streaming client's socket and counts."""

    def __init__(self, url: str, frames: list[dict], period: float, phase: float, source: str | None,
                 auth: dict | None = None):
        self.url, self.frames, self.period, self.phase, self.source = url, frames, period, phase, source
        self.auth = auth  # connect's auth, e.g. {"personal_key"}
        self.models: set[str] = set()  # what read this client's frames (a result's "model")
        self.sock: socket.socket | None = None
        self.inbox = bytearray()
        self.connected = False  # Socket.IO's namespace connect answered
        self.sent_at: dict[int, float] = {}
        self.rtts: list[float] = []
        self.timings: list[dict] = []  # the server's own per-stage timings_ms of each answered frame
        self.seq = 0
        self.sent = self.dropped = self.errors = 0
        self.connect_failed = False

    def open(self) -> None:
        """TCP, then the WebSocket upgrade (blocking: called before the clock starts)."""
        parts = urlsplit(self.url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(CONNECT_TIMEOUT_S)
        if self.source:
            self.sock.bind((self.source, 0))
        self.sock.connect((parts.hostname, parts.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\nOrigin: {self.url}\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.inbox:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ProtocolError("connection closed during the WebSocket upgrade")
            self.inbox += chunk
        head, _, rest = bytes(self.inbox).partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ProtocolError(f"no WebSocket upgrade: {head[:200]!r}")
        self.inbox = bytearray(rest)
        self.sock.setblocking(False)
        self.take_messages(time.perf_counter())  # Engine.IO's open may have come with the upgrade's answer

    def take_messages(self, now: float) -> None:
        """Act on every whole message received."""
        for opcode, payload in ws_messages(self.inbox):
            if opcode == 1:
                self.on_message(payload.decode(), now)
            elif opcode == 9:  # a WebSocket ping (Engine.IO pings in its own messages): pong
                self.sock.send(bytes([0x8A, 0x80]) + bytes(4))

    def on_message(self, text: str, now: float) -> None:
        if text.startswith("0"):  # Engine.IO open: join the default namespace
            self.send("40" + (json.dumps(self.auth) if self.auth else ""))
        elif text == "2":  # Engine.IO ping
            self.send("3")
        elif text.startswith("40"):
            self.connected = True
        elif text.startswith("44"):  # Socket.IO connect_error: the server refused this client
            self.errors += 1
            self.connect_failed = True
        elif text.startswith("42"):
            event, *args = json.loads(text[2:])
            data = args[0] if args else None
            seq = data.get("seq") if isinstance(data, dict) else None
            sent = self.sent_at.pop(seq, None)
            if event == "error":
                self.errors += 1
            elif event == "result" and sent is not None:
                self.rtts.append((now - sent) * 1000)
                self.models.add(data.get("model"))
                self.timings.append(data.get("timings_ms") or {})

    def send(self, message: str | bytes) -> None:
        data = ws_frame(message)
        # Replies are small and the kernel's buffer large: a short write means a stalled server; finish it anyway.
        while data:
            try:
                data = data[self.sock.send(data):]
            except BlockingIOError:
                time.sleep(0.001)

    def tick(self, now: float) -> None:
        """Send the frame due now, or drop it under backpressure."""
        for s, t in list(self.sent_at.items()):
            if now - t > LOST_AFTER_S:  # the page's timeout frees the slot
                del self.sent_at[s]
                self.errors += 1
        if len(self.sent_at) >= MAX_IN_FLIGHT:
            self.dropped += 1
        else:
            self.sent_at[self.seq] = now
            for message in event_messages("frame", {"seq": self.seq, **self.frames[self.seq % len(self.frames)]}):
                self.send(message)
            self.sent += 1
        self.seq += 1


def stream(url: str, n_clients: int, seconds: float, fps: float, frames: list[dict], sources: int = 1,
           probe=lambda: None, auths: list[dict] | None = None) -> tuple[list[Client], list]:
    """n_clients stream `frames` at `fps` to `url` for `seconds` (after all have connected): the clients (their
    counts) and what `probe()` returned when the streaming started, every tenth of it, and when it ended (CPU
    clocks, memory). sources > 1: client k connects from 127.0.(k % sources + 1).1; auths: client k's connect auth."""
    period = 1.0 / fps
    clients = [Client(url, frames, period, period * k / n_clients, f"127.0.{k % sources + 1}.1" if sources > 1 else None,
                      auths[k] if auths else None) for k in range(n_clients)]
    selector = selectors.DefaultSelector()
    for client in clients:
        try:
            client.open()
            selector.register(client.sock, selectors.EVENT_READ, client)
        except (OSError, ProtocolError):
            client.errors += 1
            client.connect_failed = True
    deadline = time.perf_counter() + CONNECT_TIMEOUT_S
    live = [c for c in clients if not c.connect_failed]
    while not all(c.connected or c.connect_failed for c in live) and time.perf_counter() < deadline:
        _read(selector, 0.05)
    for client in live:
        if not (client.connected or client.connect_failed):
            client.errors += 1
            client.connect_failed = True
    probes = [probe()]
    start = time.perf_counter()
    end, next_probe = start + seconds, start + seconds / 10
    due = [(start + c.phase, k) for k, c in enumerate(clients) if c.connected]  # a heap: the next frame first
    heapq.heapify(due)
    while (now := time.perf_counter()) < end:
        while due and due[0][0] <= now:
            _, k = heapq.heappop(due)
            client = clients[k]
            try:
                client.tick(now)
            except OSError:  # the server closed it
                client.errors += 1
                client.connected = False
            if client.connected:
                heapq.heappush(due, (start + client.phase + client.seq * period, k))
        if now >= next_probe:
            probes.append(probe())
            next_probe += seconds / 10
        _read(selector, max(0.0, min(due[0][0] if due else end, end) - time.perf_counter()))
    drain = time.perf_counter() + 0.5  # let the last answers arrive
    while time.perf_counter() < drain:
        _read(selector, 0.05)
    probes.append(probe())
    for client in clients:
        client.errors += len(client.sent_at)  # never answered
        if client.sock:
            client.sock.close()
    selector.close()
    return clients, probes


def _read(selector: selectors.BaseSelector, timeout: float) -> None:
    for key, _ in selector.select(timeout):
        client: Client = key.data
        try:
            chunk = client.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            chunk = b""
        if not chunk:  # the server closed it
            selector.unregister(client.sock)
            client.connected = False
            client.errors += 1
            continue
        client.inbox += chunk
        client.take_messages(time.perf_counter())
