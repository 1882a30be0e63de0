"""A `Session`'s protocol states and the reasons its reading is paused, shared by the modules that
make up a session: session.py (packet dispatch), auth.py (CONNECT to CONNACK) and flow.py (flow control).

A session moves only forward: AWAITING_CONNECT -> AUTHENTICATING (CONNECT parsed, the handler
authenticates) -> CONNECTED (CONNACK 0 sent) -> CLOSING (our side closes, or the client sent
DISCONNECT) -> CLOSED (connection_lost); a refused CONNECT goes straight to CLOSING. The code
compares states with `<` and `>=`, so their order is part of their meaning.
"""

AWAITING_CONNECT, AUTHENTICATING, CONNECTED, CLOSING, CLOSED = range(5)

# reasons reading is paused (bits of Session._paused): reading resumes once none is left
PAUSED_FOR_AUTH, PAUSED_FOR_WORK, PAUSED_FOR_WRITE = 1, 2, 4
