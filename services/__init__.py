"""Liaison Exchange services."""
