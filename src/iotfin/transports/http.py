"""HTTP device API, compatible with ThingsBoard's (`/api/v1/{token}/...`).

A 200 means every reading of the request is durably stored. A request with rejected readings gets
a 400 `application/problem+json` that still says how many readings *were* stored (`accepted`) and
why the others were not (`rejected_by_reason`): the rejected ones are in quarantine, and re-sending
the whole request is harmless because a repeated (device, key, ts) is stored once.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from iotfin.api.platform import Platform
from iotfin.api.problems import problem
from iotfin.api.routing import ApiRouter
from iotfin.core.errors import NotFound, PayloadTooLarge, Unauthorized, ValidationError
from iotfin.core.time import now_ms
from iotfin.devices import claims
from iotfin.devices.guard import Verified
from iotfin.ingest.group_commit import GroupCommitter
from iotfin.ingest.group_commit import store_parsed as store_and_report
from iotfin.ingest.payloads import (
    MAX_PAYLOAD_BYTES,
    MalformedPayload,
    ParsedTelemetry,
    load_json,
    parse_telemetry,
)
from iotfin.transports.provenance import activity, store_verified, verify_message

TRANSPORT = "http"


class ProvisionRequest(BaseModel):
    deviceName: str = Field(min_length=1, max_length=200)  # noqa: N815 - ThingsBoard's field names
    provisionDeviceKey: str = Field(min_length=1)  # noqa: N815
    provisionDeviceSecret: str = Field(min_length=1)  # noqa: N815


def committer(request: Request) -> GroupCommitter:
    state = request.app.state
    if getattr(state, "http_committer", None) is None:
        ws: Platform = state.workspace
        state.http_committer = GroupCommitter(ws.ingest, TRANSPORT, on_commit=ws.device_runtime.guard.persist)
    return state.http_committer


async def _device(request: Request, token: str) -> int:
    ws: Platform = request.app.state.workspace
    device_id = await run_in_threadpool(ws.devices.resolve_token, token)
    if device_id is None:
        raise Unauthorized("unknown, expired or revoked access token")
    activity(ws, device_id)
    return device_id


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"payload of {declared} bytes exceeds {MAX_PAYLOAD_BYTES}")
    body = bytearray()
    async for chunk in request.stream():  # also bounds bodies sent without a length
        body += chunk
        if len(body) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(f"payload exceeds {MAX_PAYLOAD_BYTES} bytes")
    return bytes(body)


async def store_parsed(request: Request, parsed: ParsedTelemetry, device_id: int | None,
                       verified: Verified | None = None) -> Response:
    ws: Platform = request.app.state.workspace
    if verified is not None and device_id is not None:
        result, rejected = await store_verified(ws, committer(request), parsed, device_id, verified)
    else:
        result, rejected = await store_and_report(ws.quarantine, committer(request), parsed, device_id)
    if not rejected:
        return Response(status_code=200)
    total = sum(rejected.values())
    return problem(400, "Readings rejected", f"{result.accepted} readings stored, {total} rejected",
                   "readings-rejected", request.url.path, accepted=result.accepted, duplicates=result.duplicates,
                   rejected_by_reason=rejected)


def router() -> APIRouter:
    r = ApiRouter(prefix="/api/v1", tags=["device API (ThingsBoard compatible)"])

    @r.post("/{token}/telemetry", responses={400: {"description": "some or all readings rejected"}})
    async def telemetry(token: str, request: Request) -> Response:
        """Telemetry in any of ThingsBoard's three forms; 200 once every reading is durable."""
        device_id = await _device(request, token)
        body = await _body(request)
        ws: Platform = request.app.state.workspace
        try:
            verified = await verify_message(ws, device_id, load_json(body), body, TRANSPORT)
            parsed = parse_telemetry(verified.data, device_id, now_ms())
        except MalformedPayload as exc:
            await run_in_threadpool(ws.quarantine.put_raw, body.decode("utf-8", "replace"), exc.reason, TRANSPORT,
                                    device_id)
            return problem(400, "Malformed payload", str(exc), exc.reason, request.url.path)
        return await store_parsed(request, parsed, device_id, verified)

    @r.post("/{token}/telemetry/bulk", responses={400: {"description": "some or all readings rejected"}})
    async def telemetry_bulk(token: str, request: Request) -> Response:
        """Gateways and back-fills: `{"<device name>": [telemetry, ...], ...}` (ThingsBoard gateway
        format) for devices of the gateway's own enterprise."""
        gateway_id = await _device(request, token)
        body = await _body(request)
        ws: Platform = request.app.state.workspace
        try:
            verified = await verify_message(ws, gateway_id, load_json(body), body, TRANSPORT)
            data = verified.data
            if not isinstance(data, dict) or not data:
                raise MalformedPayload("malformed_payload", "bulk telemetry must be an object: device name -> telemetry")
            ids = await run_in_threadpool(ws.devices.resolve_names_for_gateway, gateway_id, list(data))
            parsed = ParsedTelemetry()
            now = now_ms()
            for name, payload in data.items():
                if name not in ids:
                    parsed.rejected.append(("unknown_device", str(name), None))
                    continue
                parse_telemetry(payload, ids[name], now, parsed)
        except MalformedPayload as exc:
            await run_in_threadpool(ws.quarantine.put_raw, body.decode("utf-8", "replace"), exc.reason, TRANSPORT,
                                    gateway_id)
            return problem(400, "Malformed payload", str(exc), exc.reason, request.url.path)
        activity(ws, *ids.values())
        return await store_parsed(request, parsed, gateway_id, verified)

    @r.post("/{token}/claim")
    async def claim_request(token: str, request: Request) -> Response:
        """ThingsBoard device claiming: `{"secretKey": "...", "durationMs": 60000}` (both optional)
        opens a window in which an enterprise can claim this device with the secret."""
        device_id = await _device(request, token)
        body = await _body(request)
        try:
            secret, duration = claims.parse_claim_request(load_json(body) if body.strip() else None)
        except (MalformedPayload, ValidationError) as exc:
            return problem(400, "Malformed claim request", str(exc), "malformed_payload", request.url.path)
        ws: Platform = request.app.state.workspace
        await run_in_threadpool(claims.announce, ws.engine, device_id, secret, duration)
        return Response(status_code=200)

    @r.post("/{token}/attributes")
    async def post_attributes(token: str, request: Request) -> Response:
        device_id = await _device(request, token)
        try:
            values = load_json(await _body(request))
        except MalformedPayload as exc:
            return problem(400, "Malformed payload", str(exc), exc.reason, request.url.path)
        if not isinstance(values, dict) or not values:
            return problem(400, "Malformed payload", "attributes must be a non-empty JSON object",
                           "malformed_payload", request.url.path)
        ws: Platform = request.app.state.workspace
        await run_in_threadpool(ws.devices.save_attributes, device_id, "client", values)
        return Response(status_code=200)

    @r.get("/{token}/attributes")
    async def get_attributes(token: str, request: Request, clientKeys: str | None = None,  # noqa: N803
                             sharedKeys: str | None = None) -> dict[str, Any]:  # noqa: N803
        device_id = await _device(request, token)
        ws: Platform = request.app.state.workspace

        def keys(text: str | None) -> list[str] | None:
            return None if text is None else [k for k in text.split(",") if k]

        return await run_in_threadpool(ws.devices.attributes, device_id, keys(clientKeys), keys(sharedKeys))

    @r.post("/provision")
    async def provision(body: ProvisionRequest, request: Request) -> JSONResponse:
        """ThingsBoard device provisioning: a profile's key and secret buy a new device's token."""
        ws: Platform = request.app.state.workspace
        try:
            issued = await run_in_threadpool(ws.devices.provision, body.deviceName, body.provisionDeviceKey,
                                             body.provisionDeviceSecret)
        except NotFound:
            return JSONResponse({"status": "NOT_FOUND", "errorMsg": "provisioning key or secret not recognised"})
        except Exception as exc:  # noqa: BLE001 - ThingsBoard answers FAILURE with a message, not an error status
            return JSONResponse({"status": "FAILURE", "errorMsg": str(exc)})
        return JSONResponse({"status": "SUCCESS", "credentialsType": "ACCESS_TOKEN",
                             "credentialsValue": issued.token, "deviceId": issued.id})

    return r
