"""The ingest service: agency adapters, ``POST /v1/events``, the Redis ingress, dead letters;
imports ``core`` and ``schemas`` only, imported by the bootstrap and the entry points."""
