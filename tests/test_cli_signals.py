"""How embodia's commands turn SIGTERM / SIGHUP into an orderly stop (embodia/cli.py)."""

import os
import signal
import time

import pytest

from embodia import cli


def test_a_signal_that_lands_inside_a_finalizer_still_stops_the_command():
    """Python drops an exception raised in ``__del__``: a stop that arrives while a finalizer runs
    must be retried once the finalizer is done, not lost (CI saw a rollout run on after SIGTERM)."""

    class SignalsWhileFinalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10_000):  # the handler runs on one of these bytecodes, inside __del__
                pass

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt, match="signal SIGTERM"), cli._never_silent():
        SignalsWhileFinalized()  # dropped at once: __del__ runs here
        time.sleep(5)
    assert time.monotonic() - started < 2.0


def test_the_previous_handlers_come_back_after_a_command():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGALRM)
    with cli._never_silent():
        assert signal.getsignal(signal.SIGTERM) is cli._stop
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGALRM)) == before
