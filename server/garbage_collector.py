"""How the serving process tunes Python's cyclic garbage collector.

Two things make its pauses long on a busy gateway: young thresholds low enough that objects
living only while an event is in flight get promoted (tune), and full collections walking
every object the process made while it started, which never become garbage: modules,
classes, functions, the app's wiring (freeze_startup). Each full collection used to stall
the loop for about 40 ms with 1,000 sockets connected (`make bench-chat`, gc callbacks),
which is every delivery in flight then.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("hubbub.gc")
# The thresholds while the gateway runs. With Python's default young threshold (700), objects
# that live only while a socket's event is in flight are promoted to the older generations
# during a burst (thousands of sockets connecting or dropping at once), and each full
# collection then walks every object of every socket: when 20,000 sockets dropped at once,
# 60% of the loop's time went to collections (py-spy), and `make bench-disconnect` measured
# 17.7 s of busy loop; with these, 7.0 s.
GC_THRESHOLDS = (50_000, 20, 10)


def tune(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Raise the collector's thresholds to `thresholds` (process-wide), never lower them."""
    current = gc.get_threshold()
    if current[0] < thresholds[0]:
        gc.set_threshold(*thresholds)
        log.info("garbage collector thresholds %s (were %s)", thresholds, current)


def freeze_startup() -> int:
    """Collect once, then move every object alive now out of the collector's sight (gc.freeze):
    later full collections walk only what the process made since it started serving. Call
    once, when startup is done. Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("garbage collector: %d objects of the startup frozen", frozen)
    return frozen
