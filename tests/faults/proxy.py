"""A TCP proxy between the service and a server (PostgreSQL), to take the server away and bring it
back from a test without touching the machine's server.

An asyncio loop in a thread of the test process listens on a free loopback port and copies bytes
both ways. ``cut()`` is what a restart of the server looks like to its clients: every open
connection is reset and, while it lasts, nothing listens (a new connection is refused).
``restore()`` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import threading

from tests.servers import free_port


class TcpProxy:
    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = free_port()
        self.connections = 0  # accepted in all, to tell that the clients really go through it
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._thread.start()
        self.restore()

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def restore(self) -> None:
        """Listen again (the server is back)."""

        async def start():
            if self._server is None:
                self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

        self._run(start())

    def cut(self) -> None:
        """Reset every connection and stop listening (the server is gone)."""

        async def stop():
            if self._server is not None:
                self._server.close()
                self._server = None
            for transport in list(self._transports):
                transport.abort()  # RST, as a server process that died leaves its sockets
            self._transports.clear()

        self._run(stop())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self, client_reader, client_writer) -> None:
        self.connections += 1
        if self._server is None:  # accepted just before a cut
            client_writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        pair = {client_writer.transport, upstream_writer.transport}
        self._transports |= pair
        try:
            await asyncio.gather(
                self._copy(client_reader, upstream_writer), self._copy(upstream_reader, client_writer)
            )
        finally:
            for transport in pair:
                transport.abort()
            self._transports -= pair

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()  # one side ended: end the other, as a plain connection would
