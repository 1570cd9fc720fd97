"""The serving process raises the garbage collector's thresholds (a burst of socket closes otherwise
spends most of the loop in full collections), never lowers them, and
takes what startup made out of the full collections."""

from __future__ import annotations

import gc
import weakref

from server.garbage_collector import GC_THRESHOLDS, freeze_startup, tune


def test_thresholds_are_raised_never_lowered() -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)  # Python's defaults
        tune()
        assert gc.get_threshold() == GC_THRESHOLDS
        gc.set_threshold(200_000, 5, 5)  # someone wants more still
        tune()
        assert gc.get_threshold() == (200_000, 5, 5)
    finally:
        gc.set_threshold(*saved)


def test_what_startup_made_is_frozen_and_what_comes_after_is_collected() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self  # a reference cycle: only the cyclic collector frees it

    startup = Node()
    alive_since_startup = weakref.ref(startup)
    try:
        assert freeze_startup() > 0
        later = Node()
        collected_later = weakref.ref(later)
        del startup, later
        gc.collect()
        assert collected_later() is None
        assert alive_since_startup() is not None  # frozen: no collection walks it
    finally:
        gc.unfreeze()
        gc.collect()
    assert alive_since_startup() is None
