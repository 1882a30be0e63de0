"""The platform's one Prometheus registry: every context registers its counters here, the HTTP
edge (`iotfin.api.metrics`) serves it at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

REGISTRY = CollectorRegistry(auto_describe=True)
