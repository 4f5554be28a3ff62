"""The ledger service: the append-only, hash-chained SQL ledger, its readers, checkpoints,
replay and verification; imports ``core`` and ``schemas`` only (the only package that speaks
SQL), imported by the console, the bootstrap and the entry points."""
