"""The canonical event model of Liaison Exchange, shared by every service."""
