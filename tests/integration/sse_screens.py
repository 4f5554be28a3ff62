"""Many officer screens in a process of their own: ``python -m tests.integration.sse_screens``.

``URL TOKEN UNIT COUNT``: opens COUNT live streams of UNIT, prints ``open`` once every one
answered 200 (or ``refused STATUS`` and exits), then prints the total of ``delivered``
events pushed to them all whenever it grew, until killed. Run apart from the server under
test so that the screens' own work does not weigh on its event loop, as an attacker's
would not.
"""

from __future__ import annotations

import asyncio
import sys

import httpx


async def _screen(
    client: httpx.AsyncClient, path: str, token: str, opened: asyncio.Queue[int], got: list[int]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with client.stream("GET", path, headers=headers) as live:
        opened.put_nowait(live.status_code)
        if live.status_code != 200:
            return
        async for line in live.aiter_lines():
            if line == "event: delivered":
                got[0] += 1


async def main(url: str, token: str, unit: str, count: int) -> None:
    """Hold ``count`` streams and report what they receive."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    got = [0]
    opened: asyncio.Queue[int] = asyncio.Queue()
    async with httpx.AsyncClient(base_url=url, timeout=None, limits=limits) as client:
        path = f"/v1/units/{unit}/alerts/stream"
        screens = [
            asyncio.create_task(_screen(client, path, token, opened, got)) for _ in range(count)
        ]
        for _ in range(count):
            status = await opened.get()
            if status != 200:
                print(f"refused {status}", flush=True)
                return
        print("open", flush=True)
        reported = 0
        while not all(s.done() for s in screens):
            if got[0] != reported:
                reported = got[0]
                print(reported, flush=True)
            await asyncio.sleep(0.05)
        print("ended", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
