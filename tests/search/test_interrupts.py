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
            os.kill(os.getpid(), signal.SIGTERM)
            seen.append("block ran on")
        assert seen == ["block ran on", "handled"], "once, after the block"
        assert signal.getsignal(signal.SIGTERM) is on_term
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_ctrl_c_inside_a_block_cut_by_an_error_still_interrupts():
    with pytest.raises(KeyboardInterrupt):  # (the error's context: the interrupt wins)
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            raise ValueError("the block failed")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
