"""One-off diagnosis kept for re-use (``python -m bench.tools.<name>``): not figures of the
report; they may import the figures and their support."""
