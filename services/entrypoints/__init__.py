"""Process edges: the ``liaison`` command, the HTTP app factory, the runners and the demo; they
may import every package, and nothing in ``services`` imports them."""
