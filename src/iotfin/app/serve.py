"""`iotfin serve` and `iotfin serve-api`: the platform's processes. They compose everything (the API,
the device transports, the background workers), so they live with the composition root, not in
`iotfin.cli`; `register()` adds them to the command line and tells it how to open a workspace."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from iotfin.cli import app as cli
from iotfin.cli import kit
from iotfin.cli.kit import DataDirOpt
from iotfin.core.errors import ConfigError
from iotfin.core.settings import Settings


def serve_platform(ws: Any, port: int, host: str = "127.0.0.1", mqtt_port: int | None = None,
           mqtts: tuple[int, Any] | None = None, reuse_port: bool = False) -> None:
    """The HTTP API (uvicorn) and, when a port is given, the MQTT device endpoint, on one event loop.
    With `reuse_port`, the HTTP port is shared with ingest worker processes (SO_REUSEPORT)."""

    import uvicorn  # lazy: uvicorn loads only when this runs

    from iotfin.app.http import create_app  # lazy, as every import below: `iotfin --help` stays fast

    async def run() -> None:
        mqtt = secure = None
        if mqtt_port is not None:
            from iotfin.transports.mqtt.server import MqttServer  # lazy: the command line starts without it
            from iotfin.transports.mqtt_device import (  # lazy: the command line starts without it
                CONCURRENT_TOPICS,
                DeviceApiHandler,
            )

            handler = DeviceApiHandler(ws)
            mqtt = MqttServer(handler, host=host, port=mqtt_port, concurrent_topics=CONCURRENT_TOPICS)
            await mqtt.start()
            kit.console.print(f"MQTT device endpoint on {host}:{mqtt.port}")
            if mqtts is not None:  # MQTT over TLS, X.509 client certificates: same handler, same commits
                secure = MqttServer(handler, host=host, port=mqtts[0], ssl=mqtts[1], concurrent_topics=CONCURRENT_TOPICS)
                await secure.start()
                kit.console.print(f"MQTT over TLS (mqtts) on {host}:{secure.port}")
        kit.console.print(f"serving on http://{host}:{port} (Ctrl-C to stop)")
        from iotfin.transports.revocations import (
            watch_revocations,  # lazy: the command line starts without it
        )

        watcher = asyncio.create_task(watch_revocations(ws.devices))
        from iotfin.app.close_schedule import CloseSchedule  # lazy: the command line starts without it

        stop_close = asyncio.Event()  # the daily close at close_at (docs/operations.md#the-daily-close)
        closer = asyncio.create_task(CloseSchedule(ws).run(stop_close))
        kit.console.print(f"daily close at {ws.settings.close_at} Asia/Shanghai"
                          + (" (simulation mode)" if ws.settings.simulation else ""))
        from iotfin.app.rating import RerateScheduler  # lazy: the command line starts without it

        stop_rerate = asyncio.Event()  # the daily re-rating at rerate_at (docs/risk.md#re-rating)
        rerater = asyncio.create_task(RerateScheduler(ws, ws.settings.rerate_at).run(stop_rerate))
        try:
            server = uvicorn.Server(uvicorn.Config(create_app(ws), host=host, port=port, log_level="warning"))
            from iotfin.app.heap import settle_heap  # lazy: the command line starts without it

            settle_heap()
            if reuse_port:
                from iotfin.app.workers import _listening_socket  # lazy: only with ingest workers

                await server.serve(sockets=[_listening_socket(host, port)])
            else:
                await server.serve()
        finally:
            watcher.cancel()
            stop_close.set()
            await closer
            stop_rerate.set()
            await rerater
            if mqtt is not None:
                await mqtt.stop()
            if secure is not None:
                await secure.stop()
            await ws.device_runtime.aclose()  # buffered device events and state reach the database

    asyncio.run(run())



@cli.command()
def serve(
    http_port: Annotated[int | None, typer.Option(help="HTTP port (IOTFIN_HTTP_PORT, default 8000).")] = None,
    mqtt_port: Annotated[int | None, typer.Option(help="MQTT port (IOTFIN_MQTT_PORT, default 1883).")] = None,
    mqtts_port: Annotated[int | None, typer.Option(help="Also serve MQTT over TLS on this port (needs --tls-cert/--tls-key).")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Server certificate chain (PEM) for mqtts.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Server private key (PEM) for mqtts.")] = None,
    tls_client_ca: Annotated[Path | None, typer.Option(help="CA bundle devices' X.509 certificates chain to.")] = None,
    api_workers: Annotated[int, typer.Option(min=0, max=64, help="Also serve the open API (not the device "
                                             "endpoints) from this many extra processes on --api-port.")] = 0,
    api_port: Annotated[int | None, typer.Option(help="Port of the --api-workers processes (default: HTTP port + 1).")] = None,
    ingest_workers: Annotated[int, typer.Option(min=0, max=64, help="Serve the device endpoints (MQTT, and HTTP beside "
                                                "this process) from this many ingest processes (docs/ingest-scale.md).")] = 0,
    data_dir: DataDirOpt = None,
) -> None:
    """Run the platform on the embedded default: the API and the device endpoints; with
    --api-workers, also the open API from several processes on a second port (partner reads scale
    past one core; see docs/operations.md)."""
    mqtts = None
    if mqtts_port is not None:
        if tls_cert is None or tls_key is None:
            raise ConfigError("--mqtts-port needs --tls-cert and --tls-key")
        from iotfin.transports.mqtt.tls import server_context  # lazy: the command line starts without it

        try:
            mqtts = (mqtts_port, server_context(tls_cert, tls_key, tls_client_ca))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the TLS certificate, key or client CA: {exc}") from None
    ws = kit.workspace(data_dir)
    ws.initialise()
    port = http_port or ws.settings.http_port
    workers = None
    if api_workers:

        workers = subprocess.Popen([sys.executable, "-m", "iotfin", "serve-api", "--workers", str(api_workers),
                                    "--port", str(api_port or port + 1), "--data-dir", str(ws.data_dir),
                                    "--parent-pid", str(os.getpid())])
        kit.console.print(f"open API: {api_workers} worker processes on {ws.settings.http_host}:{api_port or port + 1}")
    ingest = None
    if ingest_workers:  # they take the MQTT port and share the HTTP port with this process
        ingest = subprocess.Popen([sys.executable, "-m", "iotfin", "serve-ingest", "--workers", str(ingest_workers),
                                   "--http-port", str(port), "--mqtt-port", str(mqtt_port or ws.settings.mqtt_port),
                                   "--data-dir", str(ws.data_dir), "--parent-pid", str(os.getpid())])
        kit.console.print(f"device ingest: {ingest_workers} worker processes")
    try:
        serve_platform(ws, port, host=ws.settings.http_host, mqtts=mqtts, reuse_port=bool(ingest_workers),
                       mqtt_port=None if ingest_workers else mqtt_port or ws.settings.mqtt_port)
    finally:
        if ingest is not None:
            ingest.terminate()  # the supervisor (iotfin.app.ingest_workers) stops its workers on SIGTERM
            try:
                ingest.wait(timeout=40)
            except subprocess.TimeoutExpired:
                ingest.kill()
        if workers is not None:
            workers.terminate()  # the supervisor (iotfin.app.workers) stops its workers gracefully on SIGTERM
            try:
                workers.wait(timeout=40)
            except subprocess.TimeoutExpired:
                workers.kill()


@cli.command("serve-api")
def serve_api(
    port: Annotated[int | None, typer.Option(help="HTTP port (default IOTFIN_HTTP_PORT + 1).")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes sharing the port.")] = 2,
    parent_pid: Annotated[int | None, typer.Option(hidden=True, help="Stop when this process ends (`serve` passes it).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """The open API alone (partners, console, enterprises; not the device endpoints), from several
    worker processes sharing one port: what lets API reads use more than one core. Background work
    (webhook deliveries, the monitor) and device traffic stay with `iotfin serve` on the same
    workspace. Rate limits are kept per process: a client may reach up to N times its limit."""

    from iotfin.app.workers import supervise  # lazy: start-up time

    ws = kit.workspace(data_dir, schema=True)  # refuse a database not at the code's schema
    host, port = ws.settings.http_host, port or ws.settings.http_port + 1
    ws.close()
    if data_dir is not None:  # the workers build their workspace from the environment
        os.environ["IOTFIN_DATA_DIR"] = str(data_dir)
    kit.console.print(f"open API on http://{host}:{port}, {workers} worker processes")
    try:
        supervise(host, port, workers, parent_pid)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def register() -> None:
    """Wire the command line to this composition root (the commands above register on import)."""
    kit.use_workspace(open_workspace)
    from iotfin.app import ingest_cli  # noqa: F401 - lazy: its commands register on import, like the ones above


def open_workspace(settings: Settings) -> Any:
    from iotfin.app.workspace import Workspace  # lazy: it imports every context; `iotfin --help` needs none

    return Workspace(settings)
