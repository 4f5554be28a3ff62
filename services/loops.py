"""Background loops that keep going through failures but stop when cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def stop_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop, even if a library swallowed it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def forever(step: Callable[[], Awaitable[object]], pause: float, what: str) -> None:
    """Run ``step`` every ``pause`` seconds until cancelled; log failures and go on.

    A client library may swallow our cancellation or turn it into its own
    error (seen with redis-py when a command is interrupted), so the task's
    pending cancellation is checked explicitly after every step.
    """
    task = asyncio.current_task()
    while True:
        try:
            await step()
        except Exception:
            if task is None or not task.cancelling():
                log.warning("%s failed; retrying in %.1fs", what, pause, exc_info=True)
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        await asyncio.sleep(pause)
