"""The canonical event model of Liaison Exchange, shared by every service; imports nothing from
``services`` (any package may import it)."""
