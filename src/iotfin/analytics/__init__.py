"""Industry activity from IoT (产业分析): sector, region and supply-chain indices computed from the telemetry store (issue 24)."""
