"""Infrastructure for the notebooks: servers, the reactor thread, events, checkers.

What a chapter teaches stays in the notebook; what it merely needs lives here.
"""

from .aio import serve_asyncio, serve_streams
from .environment import check_environment
from .events import Event, EventLog, EventTimeout
from .exercises import check
from .servers import (
    serve,
    serve_multicast,
    serve_socket,
    serve_udp,
    server_threads,
    servers,
    stop_all,
)

__all__ = [
    "Event",
    "EventLog",
    "EventTimeout",
    "check",
    "check_environment",
    "serve",
    "serve_asyncio",
    "serve_multicast",
    "serve_socket",
    "serve_streams",
    "serve_udp",
    "server_threads",
    "servers",
    "stop_all",
]
