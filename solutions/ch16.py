"""Reference solutions for chapter 16 (asyncio for Twisted users).

Run through the chapter's checkers by tests/test_exercises.py:
``check("16.1", SOLUTIONS["16.1"]).passed`` is True.
"""

from __future__ import annotations

import asyncio

# -- 16.1 -------------------------------------------------------------------


async def shout(reader, writer):
    """Reply to each line with the line upper-cased; refuse an overlong line and close."""
    try:
        while True:
            line = await reader.readuntil(b"\n")
            writer.write(line.upper())
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass  # end of stream (a partial last line is dropped)
    except asyncio.LimitOverrunError:
        writer.write(b"ERR line too long\n")
    except ConnectionError:
        pass
    finally:
        writer.close()


# -- 16.2 -------------------------------------------------------------------


async def echo_all(address, messages):
    """One connection per message, all at once; the echoes in the order of messages."""

    async def one(message):
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(message)
            await writer.drain()
            return await reader.readexactly(len(message))
        finally:
            writer.close()
            await writer.wait_closed()

    return list(await asyncio.gather(*(one(m) for m in messages)))


SOLUTIONS = {"16.1": shout, "16.2": echo_all}
