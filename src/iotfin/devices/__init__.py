"""Devices: profiles, the fleet, and the in-memory registry the ingest path checks against."""
