"""TLS for the MQTT endpoint (mqtts), with X.509 client certificates, on the standard library's `ssl`.

The server presents its certificate; a device may present one. Devices' certificates must chain to
the client CA bundle given (a self-signed device certificate can simply be added to the bundle: it
is its own CA). Which device a certificate is, is decided by its SHA-256 fingerprint against the
devices' X.509 credentials (`iotfin devices x509`), as ThingsBoard's "X.509 certificate" credentials
do. CERT_OPTIONAL: a device without a certificate may still use TLS with its access token.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def server_context(cert_file: Path, key_file: Path, client_ca_file: Path | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file is not None:
        context.load_verify_locations(cafile=client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
