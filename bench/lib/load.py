"""Web load: visitors driven in parallel (closed or open loop), timed, with latency percentiles."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bench.lib.cpu import MachineCpu, cpu_by_process, cpu_top, foreign_cpu
from bench.lib.processes import tree_cpu_seconds
from bench.lib.web import HttpError, Visitor


@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)
    accepted: list = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def drive(visitors: list[Visitor], items: list, action, rate: float | None, out: Outcome,
                ok: tuple[int, ...] = (200,), form_path: str | None = "/") -> float:
    """Each item done once by `action(visitor, item) -> status`, the visitors working in
    parallel; returns the wall time. Each visitor fetches its form (cookies + token) first,
    before the clock starts, unless form_path is None.

    Closed loop (rate None): a visitor sends as soon as its last answer came. Open loop: item i
    is due at start + i/rate and its latency counts from then, so queueing shows in p99.
    """
    if form_path is not None:
        await asyncio.gather(*(v.get_token(form_path) for v in visitors if v.token is None))
    loop = asyncio.get_running_loop()
    next_index = 0
    start = loop.time()

    async def visitor_loop(v: Visitor) -> None:
        nonlocal next_index
        while next_index < len(items):
            i = next_index
            next_index += 1
            if rate:
                due = start + i / rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                t0 = due
            else:
                t0 = loop.time()
            try:
                status = await action(v, items[i])
            except (TimeoutError, HttpError, OSError) as exc:
                out.errors.append(f"{items[i]}: {exc!r}")
                await v.close()
                continue
            out.latencies_ms.append(1000 * (loop.time() - t0))
            out.statuses[status] = out.statuses.get(status, 0) + 1
            if status in ok:
                out.accepted.append(items[i])

    await asyncio.gather(*(visitor_loop(v) for v in visitors))
    return loop.time() - start


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[k], 2)


def latency_summary(values: list[float]) -> dict:
    return {"p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "max": round(max(values), 2) if values else None}


@dataclass
class Phase:
    """One measured load phase: its wall time, the machine's CPU meanwhile, the visitors."""

    wall: float
    busy_percent: float
    cpu_top: list[dict]
    other_load: dict
    connects: int
    server_cpu_seconds: float | None = None  # user+sys of the server's processes meanwhile


async def measured(visitors: list[Visitor], items: list, action, rate: float | None, out: Outcome,
                   ok: tuple[int, ...] = (200,), form_path: str | None = "/",
                   server_pid: int | None = None) -> Phase:
    """`drive`, with the machine's CPU (ours and others') counted around it, and the CPU of
    the server's process tree when `server_pid` is given."""
    if form_path is not None:
        await asyncio.gather(*(v.get_token(form_path) for v in visitors if v.token is None))
    machine = MachineCpu().start()
    before = cpu_by_process()
    server_before = tree_cpu_seconds(server_pid) if server_pid else None
    wall = await drive(visitors, items, action, rate, out, ok, form_path)
    server_cpu = tree_cpu_seconds(server_pid) - server_before if server_pid else None
    busy = machine.stop()
    after = cpu_by_process()
    return Phase(wall, busy, cpu_top(before, after), foreign_cpu(before, after, wall, machine.busy_seconds),
                 sum(v.connects for v in visitors), server_cpu)
