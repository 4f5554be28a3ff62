"""Background loops that keep going through failures but stop when cancelled."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

from services.core.bus import OUTAGES

log = logging.getLogger(__name__)


def log_failure(logger: logging.Logger, message: str, *args: object) -> None:
    """Inside ``except``: warn — with the traceback, unless the failure is an outage
    (the server or the database away), which one line explains."""
    exc = sys.exc_info()[1]
    if isinstance(exc, OUTAGES):
        logger.warning(f"{message}: %s", *args, exc)
    else:
        logger.warning(message, *args, exc_info=True)


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
                log_failure(log, "%s failed; retrying in %.1fs", what, pause)
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        await asyncio.sleep(pause)
