"""Web load: visitors driven in parallel (closed or open loop), timed, with latency percentiles."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bench.lib.cpu import MachineCpu, cpu_by_process, cpu_top, foreign_cpu, other_load_text
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


@dataclass
class Run:
    """A web bench's load: warm-up then the measured phase, by the same visitors."""

    phase: Phase
    warm: Outcome
    out: Outcome

    @property
    def requests_per_second(self) -> float:
        return len(self.out.latencies_ms) / self.phase.wall if self.phase.wall else 0.0

    @property
    def latency(self) -> dict:
        return latency_summary(self.out.latencies_ms)

    @property
    def errors(self) -> int:
        return len(self.out.errors) + len(self.warm.errors)

    @property
    def accepted(self) -> list:
        """Every item the server accepted, warm-up's included (the checks count them all)."""
        return self.warm.accepted + self.out.accepted

    @property
    def server_cpu_ms(self) -> float:
        """User+sys of the server's processes per measured request, in milliseconds."""
        return 1000 * self.phase.server_cpu_seconds / max(len(self.out.latencies_ms), 1)

    def figures(self, per: str) -> dict:
        """What every web bench reports of its load; `per` names its unit (a signup, a redirect)."""
        return {
            "wall_seconds": round(self.phase.wall, 3),
            "requests_per_second": round(self.requests_per_second, 1),
            "latency_ms": self.latency,
            f"server_cpu_ms_per_{per}": round(self.server_cpu_ms, 3),
            "statuses": {str(k): v for k, v in sorted(self.out.statuses.items())},
            "errors": self.errors,
            "error_samples": (self.warm.errors + self.out.errors)[:5],
            "connections_opened": self.phase.connects,
            "machine_cpu_busy_percent": self.phase.busy_percent,
            "cpu_by_process": self.phase.cpu_top,
            "other_load": self.phase.other_load,
        }


def warm_then_measure(port: int, clients: int, timeout: float, warm: list, items: list, action,
                      rate: float | None, ok: tuple[int, ...] = (200,), form_path: str | None = "/",
                      server_pid: int | None = None) -> Run:
    """`clients` visitors of the server on `port`: `warm` done unmeasured (closed loop), then
    `items` through `measured`; the visitors keep their cookies, tokens and connections."""
    warm_out, out = Outcome(), Outcome()

    async def both() -> Phase:
        visitors = [Visitor("127.0.0.1", port, timeout) for _ in range(clients)]
        try:
            await drive(visitors, warm, action, None, warm_out, ok, form_path)
            return await measured(visitors, items, action, rate, out, ok, form_path, server_pid)
        finally:
            for v in visitors:
                await v.close()

    return Run(asyncio.run(both()), warm_out, out)


def load_rows(r: dict, plural: str, per: str, errors_row: tuple[str, str] | None = None) -> list:
    """The table rows of `Run.figures`: rate, latency, server CPU beside the floor's, statuses,
    errors, the machine's CPU and other load."""
    lat = r["latency_ms"]
    return [
        (f"{plural} per second", f"{r['requests_per_second']:,.1f}"),
        ("latency p50 / p90", f"{lat['p50']} ms / {lat['p90']} ms"),
        ("latency p99", f"{lat['p99']} ms"),
        ("latency max", f"{lat['max']} ms"),
        (f"server CPU per {per}", f"{r[f'server_cpu_ms_per_{per}']:.3f} ms (gunicorn processes, user+sys; "
                                  f"floor: {r['floor']['server_cpu_ms_per_request']:.3f} ms)"),
        ("HTTP statuses", ", ".join(f"{k}: {v:,}" for k, v in r["statuses"].items()) or "-"),
        errors_row or ("errors", f"{r['errors']}"),
        ("machine CPU", f"{r['machine_cpu_busy_percent']}% busy"),
        ("other load on the machine", other_load_text(r["other_load"])),
    ]
