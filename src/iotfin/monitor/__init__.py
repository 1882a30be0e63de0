"""Real-time monitoring and post-loan early warning from IoT signals (see docs/monitoring.md)."""
