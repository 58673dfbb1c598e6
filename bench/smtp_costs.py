"""What handing a message to the relay costs the sender's CPU, by protocol: the app's pipelined
DATA (`mail.smtp.Pipeline`) against BDAT (RFC 3030 CHUNKING) with 1, 4 and 16 messages in flight.

    python -m bench.smtp_costs [--messages 20000] [--size 14500] [--sink python|postfix]

An experiment for the worker's CPU per message (issue 11). DATA needs the server's 354 before
a message's content, so each message waits for one round trip, whatever the pipelining: the
sender blocks on every reply and is woken when it comes. BDAT needs no go-ahead, so a sender
may keep several messages in flight and read their replies once they are there. The BDAT
sender here is the bench's own few lines (the app does not speak BDAT); the DATA one is the
app's. Each is the CPU of this thread (user and system: the socket's kernel work is most of
it) per message, beside one RSA-2048 signature measured in the same run, and the sink's CPU.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from bench.lib import BenchError
from bench.lib.floors import rsa_floor
from bench.lib.harness import run_bench, table
from bench.lib.processes import process_cpu_seconds
from bench.lib.sinks import Sink

SENDER = "alerts@example.org"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20_000, help="per protocol")
    p.add_argument("--size", type=int, default=14_500, help="bytes a message (an alert is ~14.5 kB)")
    p.add_argument("--sink", choices=("python", "postfix"), default="python")
    p.add_argument("--json", dest="json_path", default=None)
    return p.parse_args(argv)


def message(size: int) -> bytes:
    """Quoted-printable-like lines of at most 76 characters, CRLF, none starting with a dot."""
    line = b"Thank you for standing up for children: detention is no place for a child=\r\n"
    body = (line * (size // len(line) + 1))[:size]
    return body[: body.rfind(b"\r\n") + 2]


def _pipeline(url: str, data: bytes, n: int) -> None:
    """The app's way: each message's data with the next one's envelope, one round trip each."""
    from alerts.mail import smtp

    pipe = smtp.Pipeline(smtp.connect(url))
    for i in range(n):
        then = (SENDER, f"r{i + 1}@example.net") if i + 1 < n else None
        pipe.send(SENDER, f"r{i}@example.net", data, then)
    pipe.close()


_REPLY = re.compile(rb"^(\d{3})[ -]")


def _bdat(url: str, data: bytes, n: int, window: int) -> None:
    """MAIL, RCPT and BDAT LAST with the content in one write; replies read once more than
    `window` messages are in flight (three each, all must be 250)."""
    from alerts.mail import smtp

    conn = smtp.connect(url)
    if not conn.has_extn("chunking") or not conn.has_extn("pipelining"):
        raise BenchError("the sink does not offer CHUNKING and PIPELINING")
    sock, reader = conn.sock, conn.sock.makefile("rb")
    head = f"\r\nBDAT {len(data)} LAST\r\n".encode()
    in_flight = 0

    def collect() -> None:
        for _ in range(3):
            line = reader.readline(8192)
            match = _REPLY.match(line)
            if not match or match.group(1) != b"250":
                raise BenchError(f"BDAT: the sink answered {line!r}")

    for i in range(n):
        sock.sendall(b"".join([f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<r{i}@example.net>".encode(), head, data]))
        in_flight += 1
        while in_flight > window:
            collect()
            in_flight -= 1
    while in_flight:
        collect()
        in_flight -= 1
    sock.sendall(b"QUIT\r\n")
    reader.readline(8192)
    conn.close()


def run(args, workdir) -> dict:
    from alerts.mail.dkim import generate_rsa_key

    pem, _ = generate_rsa_key()
    floor = rsa_floor(pem, samples=300)
    data = message(args.size)
    sink = Sink(args.sink)
    modes = [("DATA, pipelined (the app's smtp.Pipeline)", lambda: _pipeline(sink.url, data, args.messages))]
    modes += [(f"BDAT, {w} in flight", lambda w=w: _bdat(sink.url, data, args.messages, w))
              for w in (1, 4, 16)]
    rows = []
    try:
        for name, send in modes:
            before = sink.settle(0.1)
            sink_cpu = process_cpu_seconds(sink.proc.pid)
            c0, w0 = time.thread_time(), time.perf_counter()
            send()
            cpu, wall = time.thread_time() - c0, time.perf_counter() - w0
            counted = sink.wait_for(before + args.messages, 30) - before
            sink_cpu = process_cpu_seconds(sink.proc.pid) - sink_cpu
            if counted != args.messages:
                raise BenchError(f"{name}: the sink counted {counted} of {args.messages}")
            us = lambda seconds: round(1e6 * seconds / args.messages, 2)  # noqa: E731
            rows.append({"protocol": name, "client_cpu_us": us(cpu), "wall_us": us(wall),
                         "sink_cpu_us": us(sink_cpu), "counted": counted,
                         "x_rsa": round(1000 * cpu / args.messages / floor["cpu_ms_median"], 3)})
    finally:
        sink.stop()
    return {"messages": args.messages, "size": len(data), "sink": sink.name, "rsa_floor": floor,
            "rows": rows}


def render(r: dict) -> str:
    rows = [("messages, each", f"{r['messages']:,} of {r['size']:,} bytes, one connection each protocol"),
            ("sink", r["sink"]),
            ("RSA floor (same run)", f"{r['rsa_floor']['cpu_ms_median']:.3f} ms CPU a signature"), ("-", "")]
    for row in r["rows"]:
        rows.append((row["protocol"],
                     f"{row['client_cpu_us']:.1f} µs CPU a message ({row['x_rsa']:.3f}x RSA), "
                     f"wall {row['wall_us']:.1f} µs, sink {row['sink_cpu_us']:.1f} µs; "
                     f"{row['counted']:,} counted"))
    return table(rows, "SMTP cost per message, sender's CPU (this thread, user+sys)")


def main(argv=None) -> int:
    return run_bench("smtp_costs", parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
