"""The web console for liaison officers and auditors: pages served under ``/console/`` over the
ledger's and the notifier's parts of the API (``ConsoleApi``); imports them, ``core`` and
``schemas``; only :mod:`services.entrypoints.http` imports it."""
