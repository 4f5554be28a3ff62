"""One attempt of a webhook job: signed, bounded, sent over a kept-alive connection.

:class:`Sender` holds what is worked out once per endpoint — its parsed URL and
fixed request head, its decoded signing keys, its concurrency bound — so that an
attempt only signs (one HMAC per secret), writes one request and reads one answer.
Requests are bounded globally (``max_requests``) and per endpoint
(``per_endpoint``), and each has a total deadline, so a slow or dead endpoint holds
only its own share.

Endpoints reached through a proxy of the environment (``HTTPS_PROXY`` …), and
every endpoint when the caller hands in its own ``httpx.AsyncClient``, are sent
with httpx, as before; the rest with :class:`~services.notifier.webhook_http.KeepAliveClient`.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable

import httpx

from services.core.config import Webhook, redact
from services.notifier.webhook_http import KeepAliveClient, ProtocolError, Target, parse_target
from services.notifier.webhook_queue import CONTENT_TYPE, USER_AGENT, WebhookJob
from services.notifier.webhook_retry import (
    AttemptResult,
    RetryPolicy,
    is_retryable_status,
    parse_retry_after,
)
from services.notifier.webhook_signing import (
    ID_HEADER,
    MSG_ID,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Signing,
    endpoint_signing,
)


class _Endpoint:
    """What one endpoint needs at each attempt, worked out once."""

    __slots__ = ("sign", "slot", "target", "unusable")

    def __init__(self, webhook: Webhook, per_endpoint: int) -> None:
        self.sign = endpoint_signing(webhook.secret, webhook.signing_key)
        self.slot = asyncio.Semaphore(per_endpoint)
        self.target: Target | None = None
        self.unusable: str | None = None
        try:
            self.target = parse_target(webhook.url, USER_AGENT, CONTENT_TYPE)
        except ValueError as exc:
            self.unusable = redact(f"unusable URL: {exc}")


def _proxied(url: str) -> bool:
    """Whether the environment's proxy settings apply to ``url`` (httpx then sends it)."""
    proxies = urllib.request.getproxies()
    scheme = "https" if url.startswith("https:") else "http"
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    host = httpx.URL(url).host
    return not urllib.request.proxy_bypass(host)


class Sender:
    """Makes attempts; never raises for what an endpoint or the network did."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        max_requests: int,
        per_endpoint: int,
        clock: Callable[[], float],
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._policy = policy
        self._per_endpoint = per_endpoint
        self._clock = clock
        self._requests = asyncio.Semaphore(max_requests)
        self._endpoints: dict[str, _Endpoint] = {}
        self._fast = KeepAliveClient(connect_timeout=policy.connect_timeout)
        self._httpx = client
        self._own_httpx = client is None
        self._slow: dict[str, bool] = {}

    def _endpoint(self, webhook: Webhook) -> _Endpoint:
        known = self._endpoints.get(webhook.url)
        if known is None:
            known = self._endpoints[webhook.url] = _Endpoint(webhook, self._per_endpoint)
        return known

    def _use_httpx(self, url: str) -> bool:
        if not self._own_httpx:
            return True
        slow = self._slow.get(url)
        if slow is None:
            slow = self._slow[url] = _proxied(url)
        return slow

    async def attempt(self, job: WebhookJob, webhook: Webhook) -> AttemptResult:
        """One signed POST of ``job`` to ``webhook``."""
        endpoint = self._endpoint(webhook)
        if endpoint.unusable is not None:
            return AttemptResult(None, endpoint.unusable)
        if not MSG_ID.match(job.msg_id):  # it goes into a header and the signed content
            return AttemptResult(None, "the job's webhook-id is not [A-Za-z0-9_-]{1,255}")
        timeout = self._policy.request_timeout
        async with endpoint.slot, self._requests:
            timestamp = int(self._clock())  # the attempt's, after waiting for a slot
            try:
                if self._use_httpx(webhook.url):
                    async with asyncio.timeout(timeout):
                        status, retry_after = await self._via_httpx(job, webhook, timestamp)
                else:
                    assert endpoint.target is not None
                    head = _headers(endpoint.sign, job.msg_id, timestamp, job.body)
                    status, retry_after = await self._fast.post(
                        endpoint.target, head, job.body, timeout
                    )
            except (TimeoutError, httpx.TimeoutException):
                return AttemptResult(None, f"no answer within {timeout:g}s", retryable=True)
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                return AttemptResult(None, redact(f"unusable URL: {exc}"))
            except (httpx.HTTPError, OSError, ProtocolError) as exc:
                return AttemptResult(None, _describe(exc), retryable=True)
        if 200 <= status <= 299:
            return AttemptResult(status)
        return AttemptResult(
            status,
            f"HTTP {status}",
            parse_retry_after(retry_after, self._clock()),
            retryable=is_retryable_status(status),
        )

    async def _via_httpx(
        self, job: WebhookJob, webhook: Webhook, timestamp: int
    ) -> tuple[int, str | None]:
        if self._httpx is None:
            self._httpx = httpx.AsyncClient(
                timeout=httpx.Timeout(
                    self._policy.request_timeout, connect=self._policy.connect_timeout
                ),
                follow_redirects=False,  # a 3xx is a failure: the endpoint's URL needs updating
                headers={"user-agent": USER_AGENT},
            )
        headers = {
            "content-type": CONTENT_TYPE,
            ID_HEADER: job.msg_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: self._endpoint(webhook).sign(job.msg_id, timestamp, job.body),
        }
        request = self._httpx.stream("POST", webhook.url, content=job.body, headers=headers)
        async with request as response:
            await response.aread()  # read, so that the connection goes back to the pool
            return response.status_code, response.headers.get("retry-after")

    async def aclose(self) -> None:
        """Close the connections (and the httpx client this sender made)."""
        self._fast.close()
        if self._own_httpx and self._httpx is not None:
            await self._httpx.aclose()
            self._httpx = None


def _headers(sign: Signing, msg_id: str, timestamp: int, body: bytes) -> bytes:
    """The Standard Webhooks headers of one attempt, as CRLF-terminated lines.

    ``sign`` is the endpoint's (:func:`~services.notifier.webhook_signing.endpoint_signing`,
    keys decoded once per endpoint); ``msg_id`` was checked when the job was queued
    (:func:`~services.notifier.webhook_queue.webhook_id` makes only ``[A-Za-z0-9_-]``).
    """
    signatures = sign(msg_id, timestamp, body)
    return (
        f"{ID_HEADER}: {msg_id}\r\n{TIMESTAMP_HEADER}: {timestamp}\r\n"
        f"{SIGNATURE_HEADER}: {signatures}\r\n"
    ).encode()


def _describe(exc: BaseException) -> str:
    detail = redact(str(exc))  # kept in Redis and shown in the inbox: never a credential
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
