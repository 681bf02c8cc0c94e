"""Choosing the asyncio reactor: each case in its own process (a process has one reactor)."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_twisted_and_asyncio_servers_share_the_asyncio_reactor_loop():
    out = run("""
        import asyncio, socket
        from twisted.internet import protocol
        from helpers import serve, servers, stop_all
        from helpers.aio import serve_asyncio
        from helpers.reactor import call, install_asyncio_reactor, installed_reactor

        assert installed_reactor() is None
        loop = install_asyncio_reactor()
        assert install_asyncio_reactor() is loop  # a second Run All: the same loop
        print(installed_reactor())

        class Echo(protocol.Protocol):
            def dataReceived(self, data):
                self.transport.write(data.upper())

        class AioEcho(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport
            def data_received(self, data):
                self.transport.write(data)

        def round_trip(address):
            with socket.create_connection(address, timeout=2) as s:
                s.sendall(b"hi")
                return s.recv(10)

        async def main():
            return await serve_asyncio("aio", AioEcho, loop=loop)

        tw = serve("tw", protocol.Factory.forProtocol(Echo))
        aio = asyncio.run(main())
        print(round_trip(tw.address), round_trip(aio.address))
        print(call(lambda: asyncio.get_running_loop() is loop))
        print(stop_all(), servers())
    """)
    assert out.splitlines() == ["AsyncioSelectorReactor", "b'HI' b'hi'", "True",
                                "['aio', 'tw'] No servers running."]


def test_choosing_after_the_default_reactor_started_says_to_restart_the_kernel():
    out = run("""
        from helpers.reactor import ReactorChoiceError, install_asyncio_reactor, start
        start()
        try:
            install_asyncio_reactor()
        except ReactorChoiceError as e:
            print(e)
    """)
    assert out.startswith("Twisted's EPollReactor is already started by this kernel")
    assert "Restart the kernel and run this cell before anything" in out


def test_a_reactor_installed_by_an_import_is_named_too():
    out = run("""
        from twisted.internet import reactor
        from helpers.reactor import ReactorChoiceError, install_asyncio_reactor
        try:
            install_asyncio_reactor()
        except ReactorChoiceError as e:
            print(e)
    """)
    assert out.startswith("Twisted's EPollReactor is already installed by an import")


def test_the_running_loop_is_refused():
    out = run("""
        import asyncio, sys
        from helpers.reactor import ReactorChoiceError, install_asyncio_reactor

        async def main():
            try:
                install_asyncio_reactor(asyncio.get_running_loop())
            except ReactorChoiceError as e:
                print(e)
            print("twisted.internet.reactor" in sys.modules)

        asyncio.run(main())
    """)
    assert out.splitlines() == [
        "that loop is already running (the kernel's own loop is): the reactor thread must"
        " run a loop of its own; pass asyncio.new_event_loop()", "False"]
