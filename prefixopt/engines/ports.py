"""TCP ports for `prefixopt serve`: refuse a busy or foreign host:port in one line before a
server starts (`check_port`), and find a free one (`free_port`, for tests and fixtures).
"""

from __future__ import annotations

import errno
import socket

from prefixopt.errors import PrefixoptError

DEFAULT_HOST = "127.0.0.1"


def check_port(host: str, port: int) -> None:
    """One line if the server could not listen on host:port (busy, or not an address here)."""
    if not 0 < port < 65536:
        raise PrefixoptError(f"--port {port} is not a TCP port (1-65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PrefixoptError(f"--host {host!r} is not an address of this machine ({exc})") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PrefixoptError(f"port {port} on {host} is busy (another server?); "
                                     "pick another with --port") from None
            raise PrefixoptError(f"cannot listen on {host}:{port} ({exc.strerror})") from None


def free_port(host: str = DEFAULT_HOST) -> int:
    """A port nobody listens on right now (for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
