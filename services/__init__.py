"""Liaison Exchange: ``core`` (shared machinery), the services ``ingest``, ``ledger`` and
``notifier`` (none imports another), the web ``console`` over them, ``bootstrap`` (composes a
process) and ``entrypoints`` (the command, the HTTP app, the runners); README "Architecture"."""
