"""The gateway raises the garbage collector's thresholds (a burst of socket closes otherwise
spends most of the loop in full collections), and never lowers them."""

from __future__ import annotations

import gc

from server.gateway.setup import GC_THRESHOLDS, tune_garbage_collector


def test_thresholds_are_raised_never_lowered() -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)  # Python's defaults
        tune_garbage_collector()
        assert gc.get_threshold() == GC_THRESHOLDS
        gc.set_threshold(200_000, 5, 5)  # someone wants more still
        tune_garbage_collector()
        assert gc.get_threshold() == (200_000, 5, 5)
    finally:
        gc.set_threshold(*saved)
