"""Shared kernel: money, time, ids, errors, settings. No I/O beyond reading settings."""
