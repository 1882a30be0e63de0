"""Synthetic IoT economy: enterprises, supply chains, devices, trade, telemetry and ground truth.

Deterministic for a seed. See docs/simulator.md for the generative model.
"""

from iotfin.sim.config import SimConfig
from iotfin.sim.generate import SimDataset, content_digest, generate
from iotfin.sim.reference import DEVICE_TYPES, INCIDENT_TYPES, SECTORS

__all__ = ["DEVICE_TYPES", "INCIDENT_TYPES", "SECTORS", "SimConfig", "SimDataset", "content_digest", "generate"]
