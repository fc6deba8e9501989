"""A loopback TCP proxy whose link can be cut and restored: a WAN outage between an office and the centre.

:class:`TcpProxy` listens on 127.0.0.1 and forwards every connection to one upstream address (e.g. a
Mosquitto broker), byte for byte, in both directions. :meth:`TcpProxy.cut` breaks the link the way a
failed fibre or router does from the endpoints' point of view: every proxied connection is aborted with a
TCP reset on *both* sides (no orderly FIN, so the broker sees the client vanish and publishes its will,
and the client sees its connection reset), and the listening socket is closed, so new connections are
refused until :meth:`TcpProxy.restore` listens again on the same port. :meth:`TcpProxy.stop` cuts and ends
the proxy's thread; the proxy is also a context manager.

One thread runs everything (a :mod:`selectors` loop with per-direction buffers and back-pressure: a side
is only read while what it sent before has been written to the other side). :meth:`cut`,
:meth:`restore` and :meth:`stop` are handed to that thread and return once it has carried them out, so
after ``cut()`` returns no byte passes any more and a connect is refused.

Loopback only: both the listening and the upstream address must be in 127.0.0.0/8 (``ValueError``
otherwise). The listening port comes from :func:`tests.support.services.free_tcp_port` (outside the
ephemeral range, so listening on it again after a cut cannot collide with a client's source port).
"""

from __future__ import annotations

import contextlib
import ipaddress
import queue
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Self

from tests.support.services import LOOPBACK, free_tcp_port

__all__ = ["TcpProxy"]

CHUNK = 65536
CONNECT_TIMEOUT = 5.0  # seconds to connect upstream (loopback: immediate unless the upstream is down)
COMMAND_TIMEOUT = 10.0  # seconds cut/restore/stop wait for the proxy's thread to carry them out
_LINGER_ABORT = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST and drops unsent data

Command = Literal["cut", "restore", "stop"]


def _require_loopback(host: str, what: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"{what} {host!r} is not a loopback address (127.0.0.0/8): loopback only")


def _abort(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset (no FIN): the peer sees "connection reset", as when a link fails."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
    with contextlib.suppress(OSError):
        sock.close()


@dataclass(eq=False)
class _Pipe:
    """One proxied connection: the accepted client socket and the socket to the upstream, with the bytes
    read from each side and not yet written to the other."""

    client: socket.socket
    upstream: socket.socket
    to_upstream: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)
    client_eof: bool = False  # the client closed its sending side (FIN): pass it on once flushed
    upstream_eof: bool = False

    def peer(self, sock: socket.socket) -> socket.socket:
        return self.upstream if sock is self.client else self.client

    def outbox(self, sock: socket.socket) -> bytearray:
        """Bytes waiting to be written to ``sock``."""
        return self.to_client if sock is self.client else self.to_upstream

    def inbox_of_peer(self, sock: socket.socket) -> bytearray:
        """Bytes read from ``sock`` waiting to be written to its peer."""
        return self.to_upstream if sock is self.client else self.to_client


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream_host:upstream_port`` until cut; see the module doc.

    >>> proxy = TcpProxy("127.0.0.1", broker.port).start()   # doctest: +SKIP
    >>> agent_url = f"mqtt://{proxy.host}:{proxy.port}"       # doctest: +SKIP
    >>> proxy.cut(); ...; proxy.restore(); ...; proxy.stop()  # doctest: +SKIP
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = LOOPBACK,
                 port: int | None = None) -> None:
        _require_loopback(upstream_host, "upstream host")
        _require_loopback(host, "listening host")
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = port if port is not None else free_tcp_port()
        self.accepted = 0  # connections accepted and forwarded so far
        self.aborted = 0  # connections reset by cut() or stop()
        self._listener: socket.socket | None = None
        self._pipes: dict[socket.socket, _Pipe] = {}  # both sockets of each pipe -> the pipe
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._commands: queue.Queue[tuple[Command, Callable[[BaseException | None], None]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards the counters and the pipe count read by other threads
        self._is_cut = False

    # ---------------------------------------------------------------------------------------- public

    @property
    def address(self) -> str:
        """``host:port`` where clients connect."""
        return f"{self.host}:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._is_cut

    def connections(self) -> int:
        """Proxied connections currently open."""
        with self._lock:
            return len({id(pipe) for pipe in self._pipes.values()})

    def start(self) -> Self:
        """Listen and start forwarding (in a daemon thread). Raises ``OSError`` if the port is taken."""
        if self._thread is not None:
            raise RuntimeError("the proxy is already started")
        self._listen()
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def cut(self) -> None:
        """Reset every proxied connection (both sides) and refuse new ones, until :meth:`restore`."""
        self._command("cut")

    def restore(self) -> None:
        """Listen on the same port again: new connections are forwarded (the aborted ones stay gone)."""
        self._command("restore")

    def stop(self) -> None:
        """Cut everything, close the listener and end the thread. Idempotent."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._close_all()
            return
        self._command("stop")
        thread.join(COMMAND_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"the TCP proxy thread on {self.address} did not end")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --------------------------------------------------------------------------------- the thread

    def _command(self, command: Command) -> None:
        """Hand ``command`` to the proxy's thread and wait until it is done (its error re-raised here)."""
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError(f"the TCP proxy on {self.address} is not running")
        done = threading.Event()
        outcome: list[BaseException | None] = []

        def finished(error: BaseException | None) -> None:
            outcome.append(error)
            done.set()

        self._commands.put((command, finished))
        self._wake_write.send(b"\0")
        if not done.wait(COMMAND_TIMEOUT):
            raise RuntimeError(f"the TCP proxy on {self.address} did not carry out {command!r} in time")
        if outcome[0] is not None:
            raise outcome[0]

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of aborted pipes
            listener.bind((self.host, self.port))
            listener.listen(64)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self._listener = listener

    def _run(self) -> None:
        try:
            if self._listener is not None:
                self._selector.register(self._listener, selectors.EVENT_READ)
            while True:
                for key, events in self._selector.select():
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._wake_read:
                        if self._handle_commands():
                            return
                    elif sock is self._listener:
                        self._accept()
                    elif sock in self._pipes:  # may have been closed by an earlier event of this round
                        self._service(self._pipes[sock], sock, events)
        finally:
            self._close_all()
            self._selector.close()
            self._wake_read.close()
            self._wake_write.close()
            self._fail_pending_commands()

    def _handle_commands(self) -> bool:
        """Carry out the queued commands; True when the proxy is to stop."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            self._wake_read.recv(4096)
        while True:
            try:
                command, finished = self._commands.get_nowait()
            except queue.Empty:
                return False
            error: BaseException | None = None
            try:
                if command in ("cut", "stop"):
                    self._is_cut = True
                    self._close_listener()
                    for pipe in {id(p): p for p in self._pipes.values()}.values():
                        self._drop(pipe, abort=True)
                elif command == "restore" and self._listener is None:
                    self._listen()
                    assert self._listener is not None
                    self._selector.register(self._listener, selectors.EVENT_READ)
                    self._is_cut = False
            except OSError as exc:
                error = exc
            finished(error)
            if command == "stop":
                return True

    def _fail_pending_commands(self) -> None:
        while True:
            try:
                _, finished = self._commands.get_nowait()
            except queue.Empty:
                return
            finished(RuntimeError(f"the TCP proxy on {self.address} has stopped"))

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            client, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=CONNECT_TIMEOUT)
        except OSError:
            _abort(client)  # the upstream is down: the client sees its connection reset at once
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pipe = _Pipe(client, upstream)
        with self._lock:
            self._pipes[client] = self._pipes[upstream] = pipe
            self.accepted += 1
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(upstream, selectors.EVENT_READ)

    def _service(self, pipe: _Pipe, sock: socket.socket, events: int) -> None:
        peer = pipe.peer(sock)
        if events & selectors.EVENT_WRITE:
            outbox = pipe.outbox(sock)
            try:
                sent = sock.send(outbox)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop(pipe, abort=True)
                return
            del outbox[:sent]
        if events & selectors.EVENT_READ:
            try:
                data = sock.recv(CHUNK)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:  # reset by this side: reset the other side too
                self._drop(pipe, abort=True)
                return
            if data == b"":
                if sock is pipe.client:
                    pipe.client_eof = True
                else:
                    pipe.upstream_eof = True
            elif data:
                pipe.inbox_of_peer(sock).extend(data)
        # pass an orderly close on once everything before it is written
        for side, eof in ((pipe.client, pipe.client_eof), (pipe.upstream, pipe.upstream_eof)):
            if eof and not pipe.inbox_of_peer(side):
                with contextlib.suppress(OSError):
                    pipe.peer(side).shutdown(socket.SHUT_WR)
        if pipe.client_eof and pipe.upstream_eof and not pipe.to_client and not pipe.to_upstream:
            self._drop(pipe, abort=False)
            return
        self._rearm(pipe, sock)
        self._rearm(pipe, peer)

    def _rearm(self, pipe: _Pipe, sock: socket.socket) -> None:
        """Read ``sock`` only while what it sent before has been forwarded (back-pressure); watch it for
        writing while bytes wait for it."""
        eof = pipe.client_eof if sock is pipe.client else pipe.upstream_eof
        events = 0
        if not eof and not pipe.inbox_of_peer(sock):
            events |= selectors.EVENT_READ
        if pipe.outbox(sock):
            events |= selectors.EVENT_WRITE
        try:
            if events:
                self._selector.modify(sock, events)
            else:
                self._selector.unregister(sock)
        except KeyError:  # unregistered before (nothing to watch then): register again
            if events:
                self._selector.register(sock, events)

    def _drop(self, pipe: _Pipe, *, abort: bool) -> None:
        """Forget ``pipe`` and close both its sockets (``abort``: with a reset)."""
        for sock in (pipe.client, pipe.upstream):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            if abort:
                _abort(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()
        with self._lock:
            self._pipes.pop(pipe.client, None)
            self._pipes.pop(pipe.upstream, None)
            if abort:
                self.aborted += 1

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(listener)
            listener.close()

    def _close_all(self) -> None:
        self._is_cut = True
        self._close_listener()
        for pipe in {id(p): p for p in list(self._pipes.values())}.values():
            self._drop(pipe, abort=True)
