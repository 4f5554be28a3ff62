"""The web console for liaison officers and auditors: pages served under ``/console/`` over the
API's own ports (inbox, ledger, principals); only :mod:`services.entrypoints.http` imports it."""
