"""``python -m bench`` runs the ledger benchmark (the only one so far)."""

from bench.ledger import main

if __name__ == "__main__":
    raise SystemExit(main())
