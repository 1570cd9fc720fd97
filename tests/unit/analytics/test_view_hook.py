"""The view counter hands a batch to extra sinks only once its own write committed, so a
retried batch never reaches analytics twice, and an extra sink's failure changes nothing."""

from __future__ import annotations

from collections.abc import Mapping

from server.posts.views import ViewCounter


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.batches: list[dict[str, int]] = []

    async def add_views(self, counts: Mapping[str, int]) -> None:
        if self.fail:
            raise OSError("down")
        self.batches.append(dict(counts))


async def test_extra_sinks_see_each_written_batch_once() -> None:
    main, extra, broken = Sink(fail=True), Sink(), Sink(fail=True)
    counter = ViewCounter(main)
    counter.add_sink(broken)
    counter.add_sink(extra)
    counter.record("p")
    await counter.flush()  # the main write fails: kept, nobody else told
    assert extra.batches == [] and counter.unflushed("p") == 1
    main.fail = False
    counter.record("p")
    await counter.flush()
    assert main.batches == [{"p": 2}] and extra.batches == [{"p": 2}]
    assert counter.unflushed("p") == 0
