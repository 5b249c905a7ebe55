"""A few seconds' check that a ``--scheduler`` address is a Dask scheduler, before Dask's client waits on it.

Dask's client waits 30 s for an unreachable address, and for ever on a
server that accepts the connection but never speaks Dask (an HTTP server
waits for a request); a server that answers garbage makes it read a frame
length of exabytes (MemoryError). A Dask scheduler speaks first: on accept
it writes its handshake, framed as an 8-byte little-endian byte count and a
small msgpack message. ``probe_scheduler`` connects, reads those first 8
bytes within a few seconds and checks the count is plausible.
"""
from __future__ import annotations

import socket
import struct

from tfprofscale.errors import InputError

CONNECT_S = 3.0
ANSWER_S = 3.0
#: A scheduler's handshake (versions, compression, pickle protocol) is a few hundred bytes.
MAX_HANDSHAKE_BYTES = 1 << 20


def probe_scheduler(address: str, connect_s: float | None = None, answer_s: float | None = None) -> None:
    """Return if ``tcp://HOST:PORT`` answers as a Dask scheduler does; else InputError naming what answered.

    Waits at most ``connect_s`` to connect and ``answer_s`` for the first
    bytes (defaults CONNECT_S, ANSWER_S). Addresses of other transports
    (tls, ws, ucx) are left to Dask.
    """
    connect_s = CONNECT_S if connect_s is None else connect_s
    answer_s = ANSWER_S if answer_s is None else answer_s
    scheme, _, rest = address.partition("://")
    if scheme != "tcp":
        return
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    where = f"--scheduler {address}"
    try:
        connection = socket.create_connection((host, int(port)), timeout=connect_s)
    except socket.timeout:
        raise InputError(f"{where}: no answer within {connect_s:g} s (nothing reachable there)") from None
    except OSError as error:
        raise InputError(f"{where}: no Dask scheduler answers there (cannot connect: {error.strerror or error})"
                         ) from None
    with connection:
        first = _read_some(connection, 8, answer_s)
    if not first:
        raise InputError(f"{where}: something accepts connections there but says nothing within {answer_s:g} s "
                         "(an HTTP server, or another service): it is not a Dask scheduler")
    size = struct.unpack("<Q", first)[0] if len(first) == 8 else 0
    if not 0 < size <= MAX_HANDSHAKE_BYTES:
        raise InputError(f"{where}: it answered {_shown(first)}, which is not Dask's protocol: "
                         "it is not a Dask scheduler")


def _read_some(connection: socket.socket, count: int, within_s: float) -> bytes:
    """Up to ``count`` bytes the peer sends first, within ``within_s`` seconds (b"" if it sends nothing)."""
    connection.settimeout(within_s)
    data = b""
    try:
        while len(data) < count:
            chunk = connection.recv(count - len(data))
            if not chunk:
                break
            data += chunk
    except (socket.timeout, OSError):
        pass
    return data


def _shown(data: bytes) -> str:
    """The first bytes as the user would recognise them: text if printable, else hex."""
    text = data.decode("latin-1")
    return repr(text) if text.isascii() and text.isprintable() else f"bytes {data.hex(' ')}"
