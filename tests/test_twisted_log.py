import gc
import logging
import socket

from twisted.internet import defer, protocol

from helpers import EventLog, serve
from helpers.reactor import call
from helpers.twisted_log import LoggedError, logged_errors


def lose_a_failure():
    d = defer.Deferred()
    d.errback(ValueError("nobody handled me"))
    del d
    gc.collect()


def test_an_unhandled_failure_is_collected_and_kept_off_stderr(capsys, caplog):
    with caplog.at_level(logging.INFO), logged_errors() as errors:
        call(lose_a_failure)
    # Twisted logs this as two events: a critical message, then the failure itself.
    assert errors == [LoggedError("Unhandled error in Deferred:", None),
                      LoggedError("", "ValueError: nobody handled me")]
    assert [str(e) for e in errors] == ["Unhandled error in Deferred:",
                                        "ValueError: nobody handled me"]
    assert capsys.readouterr().err == ""
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class Faulty(protocol.Protocol):
    def dataReceived(self, data):
        raise ValueError(f"cannot handle {data!r}")

    def connectionLost(self, reason):
        self.factory.log.record("server", "lost")


def test_an_exception_in_a_protocol_callback_is_collected_with_its_error():
    factory = protocol.Factory.forProtocol(Faulty)
    factory.log = EventLog()
    with logged_errors() as errors:
        server = serve("faulty", factory)
        with socket.create_connection(server.address, timeout=2) as client:
            client.sendall(b"hi")
            factory.log.wait(1, "lost", timeout=10)  # Twisted logs the error, then drops it
        server.stop()
    assert [e.error for e in errors] == ["ValueError: cannot handle b'hi'"]
    assert errors[0].message == "Unhandled Error"
    assert errors[0].where == "dataReceived"  # the reader's method, not Twisted's caller


def test_info_messages_are_not_collected():
    from twisted.logger import Logger

    with logged_errors() as errors:
        call(lambda: Logger().info("just saying"))
    assert errors == []


def test_logging_is_restored_afterwards():
    with logged_errors():
        pass
    logger = logging.getLogger("twisted")
    assert logger.propagate
    assert not [h for h in logger.handlers if type(h).__name__ == "Forwarded"]


def test_logged_exceptions_keeps_the_exception_objects_and_nests_inside_logged_errors():
    from helpers.twisted_log import logged_exceptions

    with logged_errors() as errors, logged_exceptions() as exceptions:
        call(lose_a_failure)
    assert [type(e) for e in exceptions] == [ValueError]
    assert [e.error for e in errors if e.error] == ["ValueError: nobody handled me"]
    logger = logging.getLogger("twisted")
    assert logger.propagate
