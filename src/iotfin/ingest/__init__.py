"""Ingest: validation, dedup, durable commit and quarantine, shared by every transport."""
