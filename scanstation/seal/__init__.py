"""Sealing: a finished batch becomes a signed, encrypted package in the outbox."""
