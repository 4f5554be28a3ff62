"""When a webhook attempt is retried, how long to wait, and when to give up."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try again and when to give up (seconds throughout)."""

    max_attempts: int = 10
    max_elapsed: float = 24 * 3600.0
    """Give up rather than schedule an attempt later than this after the job was queued."""
    base_delay: float = 5.0
    """The backoff ceiling after the first failure; it doubles after each further one."""
    max_delay: float = 2 * 3600.0
    retry_after_cap: float = 2 * 3600.0
    """The longest ``Retry-After`` honoured."""
    request_timeout: float = 15.0
    """Total time allowed for one request (Standard Webhooks recommends 15-30 s)."""
    connect_timeout: float = 5.0


DEFAULT_POLICY = RetryPolicy()
"""The schedule used unless the configuration says otherwise."""


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def backoff_delay(
    policy: RetryPolicy,
    failures: int,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after ``failures`` failed attempts: full jitter, never before ``Retry-After``.

    The delay is uniform in ``[0, min(max_delay, base_delay · 2^(failures-1))]``;
    a ``Retry-After`` (capped at ``retry_after_cap``) is a lower bound.
    """
    ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** min(max(failures - 1, 0), 62))
    delay = ceiling * rand()
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.retry_after_cap))
    return delay


def is_retryable_status(status: int) -> bool:
    """408, 429 and 5xx are worth another attempt; other failures are not."""
    return status in (408, 429) or 500 <= status <= 599


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one POST came to."""

    status: int | None
    """The HTTP status, or None when there was no answer."""
    error: str | None = None
    retry_after: float | None = None
    """Seconds the endpoint asked us to wait (``Retry-After``)."""
    retryable: bool = False

    @property
    def delivered(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status <= 299
