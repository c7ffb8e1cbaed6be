"""Connections that hold the server without sending a request: each must send its request head within a
short time, and one client address holds at most so many connections at once.

uvicorn closes idle keep-alive connections, but a new connection may take as long as it likes to send its
request head, and its concurrency limit counts connections: a few hundred connections that send nothing
made it answer 503 to everyone for as long as they stayed open (issue 29).
"""

from __future__ import annotations

import asyncio
import ipaddress

from uvicorn.protocols.http.h11_impl import H11Protocol

TOO_LATE = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"


def client_address(host: str) -> str:
    """What the per-address cap counts: an IPv4 address, or the /64 of an IPv6 one (one client's usual share)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_network(host: str) -> str:
    """The network a client address is counted in where networks share (turns, upload slots): an IPv4 /24, the
    /64 of an IPv6 address (for IPv6, its `client_address`)."""
    address = client_address(host)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # an IPv6 /64 already, or not an address at all (tests' "testclient")
    return str(ipaddress.IPv4Network((ip, 24), strict=False))


def _refusal(limit: int) -> bytes:
    body = b'{"detail":"connections from this client address: limit %d"}' % limit
    head = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
    return head + b"retry-after: 5\r\ncontent-length: %d\r\n\r\n" % len(body) + body


def guarded_protocol(
    header_timeout_s: float, max_per_address: int, exempt: frozenset[str] = frozenset()
) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol with two guards: a connection that has not sent a whole request head
    `header_timeout_s` after it opened (or after the first byte of its next request) is answered 408 and
    closed; one beyond `max_per_address` open from one client address is answered 503 and closed at once.
    `exempt`: addresses not capped (trusted reverse proxies, which carry many clients)."""
    refusal = _refusal(max_per_address)
    held: dict[str, int] = {}  # open connections by client address (one event loop: no lock)

    class GuardedProtocol(H11Protocol):
        _address: str | None = None
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            address = client_address(self.client[0]) if self.client else ""
            if address not in exempt:
                if held.get(address, 0) >= max_per_address:
                    transport.write(refusal)
                    transport.close()
                    return
                held[address] = held.get(address, 0) + 1
                self._address = address
            self._await_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is None or self.cycle.response_complete:
                self._await_head()  # bytes of a request head (or of an unread body): the clock runs
            else:
                self._stop_waiting()  # a request is being served: the routes bound its body

        def on_response_complete(self) -> None:
            self._stop_waiting()  # idle now: uvicorn's keep-alive timeout closes it
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            if self._address is not None:
                held[self._address] -= 1
                if not held[self._address]:
                    del held[self._address]
                self._address = None
            super().connection_lost(exc)

        def _await_head(self) -> None:
            if self._deadline is None:  # started once per request: a trickle does not push it back
                self._deadline = self.loop.call_later(header_timeout_s, self._too_late)

        def _stop_waiting(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_late(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.write(TOO_LATE)
                self.transport.close()

    return GuardedProtocol
