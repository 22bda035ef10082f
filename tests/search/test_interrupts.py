"""`interrupts_deferred`: a signal inside the block takes effect as the block ends."""

from __future__ import annotations

import os
import signal

import pytest
from paretotune._interrupts import interrupts_deferred


def test_a_sigterm_inside_the_block_reaches_its_handler_after_it():
    seen: list[str] = []

    def on_term(signum, frame):
        seen.append("handled")

    before = signal.signal(signal.SIGTERM, on_term)
    try:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            seen.append("block ran on")
        assert seen == ["block ran on", "handled"], "after the block"
        assert signal.getsignal(signal.SIGTERM) is on_term
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_ctrl_c_inside_a_block_cut_by_an_error_still_interrupts():
    with pytest.raises(KeyboardInterrupt):  # (the error's context: the interrupt wins)
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            raise ValueError("the block failed")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_signal_does_not_wait_and_sigterm_goes_first():
    """Ctrl-C once is held while the block writes; a second signal acts at once (a write
    stuck on a slow server must not make Ctrl-C look dead), SIGTERM before SIGINT."""
    seen: list[str] = []

    def on_term(signum, frame):
        seen.append("terminated")
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, on_term)
    try:
        with pytest.raises(KeyboardInterrupt), interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            seen.append("held")
            os.kill(os.getpid(), signal.SIGTERM)
            seen.append("never: the second signal acts at once")
        assert seen == ["held", "terminated"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, before)
