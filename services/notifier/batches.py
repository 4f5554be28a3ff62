"""Alert-stream batches in two steps, so that reading and rendering overlap the writes.

:func:`prepare_alerts` parses a batch and renders every alert for its
recipients (CPU only, no round trip); :func:`commit_alerts` admits, writes
and publishes prepared batches in stream order. The reader prepares the next
batch while the server runs the previous batch's scripts
(:func:`services.core.streaming.subscribe_pipelined`), and entries are
acknowledged only after :func:`commit_alerts` returned: inbox entries and
receipts are in Redis by then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from schemas.events import CloudEvent
from schemas.vocabulary import EventType
from services.core.bus import DeadLetters, Entry
from services.notifier.admission import CHANGE_TYPES, UnknownAlert, admit
from services.notifier.changes import pass_on_change
from services.notifier.handlers import NotifierDeps, Rendered, deliver, render
from services.notifier.operation_gate import sort_operations

WRITE_ALERTS = 100
"""Alerts per inbox script at most: a longer script holds other clients up (~15 ms at 300)."""


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch parsed, each ``alert.raised`` rendered (by the event's ``id()``)."""

    parsed: list[tuple[Entry, CloudEvent]]
    rendered: dict[int, Rendered]


async def prepare_alerts(
    entries: Sequence[Entry], deps: NotifierDeps, dead: DeadLetters
) -> PreparedBatch:
    """Parse a batch (a bad entry goes to the dead letters) and render its alerts.

    Rendered before admission: an alert refused there is simply not written.
    """
    parsed: list[tuple[Entry, CloudEvent]] = []
    for entry in entries:
        try:
            parsed.append((entry, CloudEvent.from_json(entry.payload)))
        except ValidationError as exc:
            await dead.put(entry, f"notifier: not a valid event: {exc.error_count()} error(s)")
    now = deps.clock()
    rendered = {  # an operation's alerts once their members are known (commit_alerts)
        id(event): render(event, deps, now)
        for _, event in parsed
        if event.type is EventType.ALERT_RAISED and event.operation is None
    }
    return PreparedBatch(parsed, rendered)


async def commit_alerts(
    batches: Sequence[PreparedBatch], deps: NotifierDeps, dead: DeadLetters
) -> None:
    """Admit and write prepared batches, in stream order, as one.

    Batches queued while the previous commit ran are written together (one
    admission, one inbox script per :data:`WRITE_ALERTS` alerts): under load
    that is what reading a backlog at once used to give. A change is passed
    on only after every alert before it was delivered, so it finds their
    recipients. Raises :class:`UnknownAlert` at the end if a change was held
    back: those entries stay pending for the claimer; the rest is done.
    """
    parsed = [item for batch in batches for item in batch.parsed]
    rendered = {key: r for batch in batches for key, r in batch.rendered.items()}
    now = deps.clock()
    gate = await sort_operations(parsed, deps.operations, now)
    for event in (ev for _, ev in gate.passed if id(ev) in gate.members):
        rendered[id(event)] = render(event, deps, now, gate.members[id(event)])
    admission = await admit(gate.passed, deps.inbox)
    admission.held += gate.held
    for entry, reason in [*gate.refused, *admission.refused]:
        await dead.put(entry, reason)
    raised: list[Rendered] = []
    for event in admission.admitted:
        if event.type is EventType.ALERT_RAISED:
            raised.append(rendered[id(event)])
            if len(raised) == WRITE_ALERTS:
                await deliver(raised, deps)
                raised = []
        elif event.type in CHANGE_TYPES:
            await deliver(raised, deps)
            raised = []
            await pass_on_change(event, deps)
    await deliver(raised, deps)
    if admission.held:
        held = admission.held
        raise UnknownAlert([e.entry_id for e, _ in held], "; ".join(why for _, why in held))


async def handle_alert_entries(
    entries: Sequence[Entry], deps: NotifierDeps, dead: DeadLetters
) -> None:
    """Prepare and commit one batch (the claimer's path, and tests')."""
    await commit_alerts([await prepare_alerts(entries, deps, dead)], deps, dead)
