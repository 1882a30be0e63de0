"""The `iotfin` command's entry point: the command line of `iotfin.cli`, with the composition root's
server commands and workspace, and the demo's commands. The only module that sees every layer."""

from __future__ import annotations

from iotfin.app import serve
from iotfin.cli import run
from iotfin.demo import cli as demo_cli  # noqa: F401  registers `iotfin demo` and `iotfin sim`


def main() -> None:
    serve.register()
    run()


if __name__ == "__main__":
    main()
