"""iotfin: IoT-backed lending to small and micro enterprises."""
__version__ = "0.1.0"
