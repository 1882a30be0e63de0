"""The `iotfin` command's entry point: the CLI with every command registered, typed errors as one line."""

from __future__ import annotations

from iotfin.cli.root import main

__all__ = ["main"]
