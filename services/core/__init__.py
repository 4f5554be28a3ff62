"""Shared machinery with no business rule: settings, stream names, publishing, consuming, the Redis
client and embedded server, metrics, the HTTP edge's helpers; any package may import it, it
imports no service (only ``schemas``)."""
