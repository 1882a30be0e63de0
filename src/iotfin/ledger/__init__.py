"""Trusted data ledger: Merkle log, checkpoints, evidence bundles, financing registry."""
