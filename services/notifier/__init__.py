"""The notifier service: routing, per-unit inboxes, acknowledgements, escalation, webhooks, live
streams; imports ``core`` and ``schemas`` only, imported by the console, the bootstrap and the
entry points."""
