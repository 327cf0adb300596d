"""Free TCP ports for the processes a test starts.

A port the kernel hands out for `bind(port 0)` is free only until it is closed again, and
the kernel may hand out the same one to the next caller before the process it was picked
for has bound it (a scheduler still starting, say). So no port is handed out twice in one
test run: each call skips the ports given before.
"""

import socket
import threading

_given: set[int] = set()
_lock = threading.Lock()


def _bound_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _is_free(port: int) -> bool:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


def free_port(companion_offset: int | None = None) -> int:
    """A free port not given before in this run; with `companion_offset`, one whose
    port + offset is free and not given either (SeaweedFS serves gRPC on port + 10000)."""
    with _lock:
        for _ in range(500):
            port = _bound_port()
            if port in _given:
                continue
            if companion_offset is not None:
                other = port + companion_offset
                if other > 65535 or other in _given or not _is_free(other):
                    continue
                _given.add(other)
            _given.add(port)
            return port
    raise RuntimeError("no free port found in 500 tries")
