"""Chapter 13's own code, run for real: every socket stays on loopback. The multicast
listeners bind the chapter's group address, which receives that group only, joined on
127.0.0.1 (the chapter explains why)."""

from pathlib import Path

from test_ch01_teaching import exposed_sockets

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "13_udp.ipynb"


def test_every_socket_of_the_chapter_stays_on_loopback():
    assert exposed_sockets(NOTEBOOK, groups=("239.255.13.13",)) == []
