"""The one webhook receiver both products post to, as its own process (``python -m bench.support.peer_receiver``).

A plain HTTP/1.1 keep-alive server on asyncio (kept lean: its CPU is not either
product's). ``POST /r<k>`` records receiver ``k``, the alert number found in the body
(``bench-<n>``), the arrival time (``time.time()``) and, when Standard Webhooks
headers are present, whether the signature verifies with the secret given on the
command line; it answers ``200`` with a small body, as real endpoints do.
``GET /stats`` returns what was recorded (JSON); ``GET /reset`` forgets it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import sys
import time

NUMBER = re.compile(rb"bench-(\d+)")
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


class State:
    """What arrived: ``[receiver, alert number, arrival]`` rows and signature counts."""

    def __init__(self, key: bytes | None) -> None:
        self.key = key
        self.rows: list[tuple[int, int, float]] = []
        self.valid = self.invalid = self.unsigned = 0
        self.connections = 0

    def reset(self) -> None:
        """Forget everything recorded."""
        self.rows, self.valid, self.invalid, self.unsigned, self.connections = [], 0, 0, 0, 0

    def stats(self) -> bytes:
        """Everything recorded, as JSON."""
        return json.dumps(
            {
                "rows": self.rows,
                "valid": self.valid,
                "invalid": self.invalid,
                "unsigned": self.unsigned,
                "connections": self.connections,
            }
        ).encode()


class Receiver(asyncio.Protocol):
    """One connection: requests parsed as they arrive, answered in order."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.state.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].split(b"\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            self.handle(lines[0], headers, body)

    def handle(self, request_line: bytes, headers: dict[bytes, bytes], body: bytes) -> None:
        assert self.transport is not None
        method, target = request_line.split(b" ")[:2]
        if method == b"GET":
            if target == b"/reset":
                self.state.reset()
                payload = b"{}"
            else:
                payload = self.state.stats()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
            )
            return
        now = time.time()
        found = NUMBER.search(body)
        receiver = int(target.rsplit(b"/r", 1)[-1] or 0)
        self.state.rows.append((receiver, int(found.group(1)) if found else -1, now))
        self.verify(headers, body)
        self.transport.write(OK)

    def verify(self, headers: dict[bytes, bytes], body: bytes) -> None:
        signature = headers.get(b"webhook-signature")
        if signature is None or self.state.key is None:
            self.state.unsigned += 1
            return
        content = b"%s.%s.%s" % (headers[b"webhook-id"], headers[b"webhook-timestamp"], body)
        expected = b"v1," + base64.b64encode(
            hmac.new(self.state.key, content, hashlib.sha256).digest()
        )
        if any(hmac.compare_digest(expected, s) for s in signature.split(b" ")):
            self.state.valid += 1
        else:
            self.state.invalid += 1


async def serve(port: int, secret: str | None) -> None:
    """Serve until killed; print ``listening`` once the socket is bound."""
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret else None
    state = State(key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Receiver(state), "127.0.0.1", port, backlog=4096)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
