"""A thread-safe event log that servers, clients and protocols write to.

A cell starts some network activity, waits on the log until what it expects
has been recorded (with a timeout that names what was missing), then shows
the events grouped by source, so the output does not depend on how threads
happened to interleave.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    seq: int
    source: str
    what: str
    details: dict = field(default_factory=dict)

    def __str__(self):
        extra = "".join(f" {k}={v!r}" for k, v in self.details.items())
        return f"{self.source}: {self.what}{extra}"


class EventTimeout(TimeoutError):
    """A wait on an EventLog ran out of time; the message says what was missing."""


def _matcher(match):
    if match is None:
        return lambda event: True
    if callable(match):
        return match
    return lambda event: event.what == match


class EventLog:
    """Events recorded from any thread; `wait` for them, then `show` them."""

    def __init__(self):
        self._events: list[Event] = []
        self._changed = threading.Condition()

    def record(self, source: str, what: str, **details) -> Event:
        """Append an event from `source` (a name such as "server" or "client 1")."""
        with self._changed:
            event = Event(len(self._events), source, what, details)
            self._events.append(event)
            self._changed.notify_all()
        return event

    def clear(self) -> None:
        with self._changed:
            self._events.clear()

    @property
    def events(self) -> list[Event]:
        """A snapshot of every event, in the order they were recorded."""
        with self._changed:
            return list(self._events)

    def __len__(self):
        return len(self.events)

    def __iter__(self):
        return iter(self.events)

    def wait(self, count: int = 1, match=None, *, timeout: float = 5.0) -> list[Event]:
        """Wait until `count` events match; return the matching events.

        `match` is an event name (compared with `Event.what`), a predicate
        taking an Event, or None for any event. Raises EventTimeout after
        `timeout` seconds, saying what was expected and what was seen.
        """
        wanted = _matcher(match)

        def found():
            return [e for e in self._events if wanted(e)]

        with self._changed:
            if self._changed.wait_for(lambda: len(found()) >= count, timeout):
                return found()
            seen = "\n  ".join(str(e) for e in self._events) or "(nothing)"
            label = "any event" if match is None else f"{match!r}"
            raise EventTimeout(
                f"waited {timeout:g} s for {count} x {label} but saw {len(found())};"
                f" events so far:\n  {seen}"
            )

    def wait_until(self, condition, *, timeout: float = 5.0, what: str = "condition"):
        """Wait until `condition(events)` is true; EventTimeout names `what` if not."""
        with self._changed:
            if not self._changed.wait_for(lambda: condition(list(self._events)), timeout):
                raise EventTimeout(f"waited {timeout:g} s for {what}; it did not happen")
            return list(self._events)

    def lines(self, by: str = "source") -> list[str]:
        """Events as text; by="source" groups them per source (sorted by name)
        keeping each source's own order; by="time" keeps recording order, for
        sequences that are ordered by cause and effect."""
        events = self.events
        if by == "source":
            events = sorted(events, key=lambda e: (e.source, e.seq))
        elif by != "time":
            raise ValueError(f"by must be 'source' or 'time', not {by!r}")
        return [str(e) for e in events]

    def show(self, by: str = "source") -> None:
        """Print the events (see `lines`)."""
        print("\n".join(self.lines(by)) or "(no events)")
