"""MQTT reason codes the server and the platform's handler use, and the edge mapping of typed errors.

MQTT 5 carries these on the wire; MQTT 3.1.1 has only CONNACK return codes, so the server turns
a failure into PUBACK-or-close by the rule in `iotfin.transports.mqtt.server`.
"""

from __future__ import annotations

from iotfin.core.errors import IotfinError, PayloadTooLarge, ServiceUnavailable, Unauthorized, ValidationError

SUCCESS = 0x00
NORMAL_DISCONNECTION = 0x00
GRANTED_QOS_0 = 0x00
GRANTED_QOS_1 = 0x01
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
UNSPECIFIED_ERROR = 0x80
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
IMPLEMENTATION_SPECIFIC_ERROR = 0x83
UNSUPPORTED_PROTOCOL_VERSION = 0x84
CLIENT_IDENTIFIER_NOT_VALID = 0x85
BAD_USER_NAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
SERVER_UNAVAILABLE = 0x88
SERVER_BUSY = 0x89
BAD_AUTHENTICATION_METHOD = 0x8C
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_IDENTIFIER_IN_USE = 0x91
PACKET_IDENTIFIER_NOT_FOUND = 0x92
RECEIVE_MAXIMUM_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
QUOTA_EXCEEDED = 0x97
PAYLOAD_FORMAT_INVALID = 0x99
QOS_NOT_SUPPORTED = 0x9B
SERVER_SHUTTING_DOWN = 0x8B
SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1

#: reason codes MQTT 5 allows in a PUBACK (and PUBREC); anything else a handler returns becomes 0x80
PUBACK_CODES = frozenset({SUCCESS, NO_MATCHING_SUBSCRIBERS, UNSPECIFIED_ERROR, IMPLEMENTATION_SPECIFIC_ERROR,
                          NOT_AUTHORIZED, TOPIC_NAME_INVALID, PACKET_IDENTIFIER_IN_USE, QUOTA_EXCEEDED,
                          PAYLOAD_FORMAT_INVALID})

#: MQTT 5 SUBACK failure codes; any other failure a handler returns becomes 0x80
SUBACK_FAILURE_CODES = frozenset({UNSPECIFIED_ERROR, IMPLEMENTATION_SPECIFIC_ERROR, NOT_AUTHORIZED,
                                  TOPIC_FILTER_INVALID, PACKET_IDENTIFIER_IN_USE, QUOTA_EXCEEDED,
                                  SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED, 0xA2})

#: failures that are final: the message was handled (rejected with a reason, quarantined, counted), and
#: sending it again cannot help. MQTT 3.1.1 has no negative PUBACK, so these are PUBACKed there; every
#: other failure (nothing stored) closes a 3.1.1 connection without a PUBACK so the client resends.
FINAL_REJECTIONS = frozenset({NOT_AUTHORIZED, TOPIC_NAME_INVALID, PAYLOAD_FORMAT_INVALID})

# MQTT 3.1.1 CONNACK return codes
V311_ACCEPTED = 0
V311_UNACCEPTABLE_PROTOCOL_VERSION = 1
V311_IDENTIFIER_REJECTED = 2
V311_SERVER_UNAVAILABLE = 3
V311_NOT_AUTHORIZED = 5


def reason_code_for(exc: BaseException) -> int:
    """The PUBACK reason code for an exception a handler raised: typed domain errors map to their meaning."""
    if isinstance(exc, Unauthorized):
        return NOT_AUTHORIZED
    if isinstance(exc, (ValidationError, PayloadTooLarge)):
        return PAYLOAD_FORMAT_INVALID
    if isinstance(exc, ServiceUnavailable):
        return IMPLEMENTATION_SPECIFIC_ERROR
    if isinstance(exc, IotfinError):
        return UNSPECIFIED_ERROR
    return IMPLEMENTATION_SPECIFIC_ERROR
