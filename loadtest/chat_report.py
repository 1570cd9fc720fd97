"""The printed report of `make bench-chat`: the connect + join ramp, the server's memory, the
fixed load, the peak ladder step by step, and the final table, one metric per line, named as in
the side-by-side benchmark against peer servers (`summary_rows`).

The peak (`find_peak`) is the highest passing level's deliveries/s, the fixed load counting as
a level (chat_results.Window.why_not has the criteria); it is only a lower bound when no step
failed, or when a client process used more than 0.9 core (CLIENT_CORE_LIMIT) at the best or
the first failing level (the clients, not the server, may have set the pace).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chat_results import SETTLE_SECONDS, Load, Window, percentile

if TYPE_CHECKING:
    from bench_chat import Options


@dataclass
class Peak:
    best: Window | None  # the highest passing level (the fixed load counts as one)
    first_fail: Window | None  # the first level that failed
    lower_bound: bool  # nothing failed, or the clients may have set the pace


def find_peak(load: Load) -> Peak:
    levels = [load.fixed, *load.steps]
    best = max((w for w in levels if w.passed), key=lambda w: w.deliveries_per_s, default=None)
    first_fail = next((w for w in levels if not w.passed), None)
    lower_bound = best is not None and (first_fail is None or best.client_limited
                                        or first_fail.client_limited)
    return Peak(best, first_fail, lower_bound)


def _ratio(numerator: float, denominator: float | None) -> float:
    return numerator / denominator if denominator else float("nan")


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _cores(level: Window, cpu_seconds: float | None) -> str:
    return fmt(level.cores(cpu_seconds), 2)


def step_line(step: Window) -> str:
    """One ladder level in one line: load, what arrived, latency, CPU, verdict."""
    total, latencies = step.total, step.total.latencies_ms
    connected = sum(r.connected for r in step.results)
    cores = "/".join(f"{c:.2f}" for c in step.client_cores)
    verdict = "pass" if step.passed else "FAIL: " + "; ".join(step.why_not)
    return (f"{step.rate:g} msg/s x {connected} clients: {total.acked}/{total.sent} acked, "
            f"{total.delivered}/{total.expected} delivered ({step.deliveries_per_s:,.0f}/s), "
            f"p50 {percentile(latencies, 0.5):.1f} ms p99 {percentile(latencies, 0.99):.1f} ms, "
            f"server {_cores(step, step.server_cpu_s)} cores, PG {_cores(step, step.pg_cpu_s)} "
            "cores, client "
            f"processes {cores} cores"
            + (" [client-limited]" if step.client_limited else "") + f": {verdict}")


def _peak_text(peak: Peak) -> str:
    """E.g. "4,000 (0.4 msg/s per client; 0.8 failed: p99 2300 ms)", ">= ..." when it is
    only a lower bound."""
    best, fail = peak.best, peak.first_fail
    failed = f"{fail.rate:g} failed: {'; '.join(fail.why_not)}" if fail else "no step failed"
    if best is None:
        return f"none passed ({failed})"
    shown = f"{best.deliveries_per_s:,.0f} ({best.rate:g} msg/s per client; {failed}"
    if not peak.lower_bound:
        return shown + ")"
    limited = best.client_limited or (fail is not None and fail.client_limited)
    return (f">= {shown}; a lower bound"
            + (": a client process used > 0.9 core)" if limited else ")"))


def summary_rows(load: Load) -> dict[str, str]:
    """The final table: the side-by-side benchmark's metrics, for Hubbub alone."""
    fixed, total = load.fixed, load.fixed.total
    pg = fixed.pg_cpu_s
    per_join = _ratio(load.ramp_cpu_s * 1000, load.connected)
    pg_per_join = (_ratio(load.ramp_pg_cpu_s * 1000, load.connected)
                   if load.ramp_pg_cpu_s is not None else None)
    return {
        "deliveries per server-CPU-s": fmt(_ratio(total.delivered, fixed.server_cpu_s), 0),
        "deliveries per (server+PG)-CPU-s": fmt(
            _ratio(total.delivered, fixed.server_cpu_s + pg) if pg is not None else None, 0),
        "server CPU-ms per message": fmt(_ratio(fixed.server_cpu_s * 1000, total.acked), 2),
        "peak sustained deliveries/s": _peak_text(find_peak(load)),
        "KiB RSS per idle connection": fmt(
            _ratio((load.rss_connected - load.rss_before) / 1024, load.connected)),
        "CPU-ms per connect+join": f"{fmt(per_join, 2)} (PG backends {fmt(pg_per_join, 2)})",
        "latency p50 ms": fmt(percentile(total.latencies_ms, 0.5)),
        "latency p99 ms": fmt(percentile(total.latencies_ms, 0.99)),
    }


def report(options: Options, load: Load, use_redis: bool) -> None:
    fixed, total = load.fixed, load.fixed.total
    latencies = total.latencies_ms
    mib = 1024 * 1024
    print(f"\nHubbub chat benchmark: {load.connected} clients in rooms of {options.room_size} "
          f"(Socket.IO manager: {'redis' if use_redis else 'in-process'}, "
          f"{options.procs} client processes, server LOG_LEVEL={options.log_level})")
    print(f"  connect + join ramp:        {load.ramp:.1f}s ({total.failed_connects} failed); "
          f"server {load.ramp_cpu_s:.2f} CPU-s, PG backends {fmt(load.ramp_pg_cpu_s, 2)} CPU-s")
    print(f"  server RSS:                 {load.rss_before / mib:.1f} MiB before clients, "
          f"{load.rss_connected / mib:.1f} MiB {SETTLE_SECONDS:g}s after the last join, "
          f"{load.rss_end / mib:.1f} MiB after the load")
    print(f"fixed load: {options.rate:g} msg/s per client for {options.seconds:g}s")
    print(f"  messages sent / acked:      {total.sent} / {total.acked}  "
          f"({total.acked / options.seconds:.0f} msg/s acked)"
          + (f"  errors: {total.errors}" if total.errors else ""))
    print(f"  messages delivered:         {total.delivered} of {total.expected} expected "
          f"({fixed.deliveries_per_s:.0f} deliveries/s)")
    if latencies:
        print(f"  delivery latency:           p50 {percentile(latencies, 0.5):.1f} ms, "
              f"p99 {percentile(latencies, 0.99):.1f} ms, "
              f"mean {statistics.fmean(latencies):.1f} ms, max {max(latencies):.1f} ms")
    print(f"  CPU:                        server {_cores(fixed, fixed.server_cpu_s)} cores, "
          f"its Postgres backends {_cores(fixed, fixed.pg_cpu_s)} cores, client processes "
          + "/".join(f"{c:.2f}" for c in fixed.client_cores) + " cores")
    print(f"  unexpected disconnects:     {total.disconnects}")
    print("  as a peak ladder level:     "
          + ("pass" if fixed.passed else "FAIL: " + "; ".join(fixed.why_not)))
    if load.steps:
        print(f"peak ladder: {options.step_seconds:g}s steps, the rate per client doubling from "
              f"{options.first_step_rate:g} msg/s, at most {options.max_steps} step(s)")
        for number, step in enumerate(load.steps, 1):
            print(f"  step {number}: {step_line(step)}")
    rows = summary_rows(load)
    width = max(len(name) for name in rows)
    print(f"\nSummary (fixed load {options.rate:g} msg/s x {load.connected} clients; "
          "server = the hubbub process, PG = its database's backends)")
    for name, value in rows.items():
        print(f"  {name:<{width}}  {value}")

