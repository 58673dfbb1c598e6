"""A minimal SMTP sink for the benchmarks: accepts every message, keeps none, counts them.

Run in its own process: `python -m bench.smtpsink --port 2525`. It speaks enough SMTP for
smtplib and for pipelining clients (EHLO/HELO, MAIL, RCPT, DATA, BDAT, RSET, NOOP, QUIT) and writes
its running count to stdout the way Postfix's `smtp-sink -c` does (`... mesg=N\\r`), so the
benchmarks read both sinks the same way. Used when Postfix's smtp-sink is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

GREETING = b"220 bench-sink ESMTP\r\n"
EHLO = (b"250-bench-sink\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n250-SIZE 52428800\r\n"
        b"250 SMTPUTF8\r\n")
OK = b"250 2.0.0 Ok\r\n"
DATA_GO = b"354 End data with <CR><LF>.<CR><LF>\r\n"
QUEUED = b"250 2.0.0 Ok: queued\r\n"
BYE = b"221 2.0.0 Bye\r\n"
UNKNOWN = b"502 5.5.2 Error: command not recognized\r\n"

END = b"\r\n.\r\n"


class Counter:
    def __init__(self) -> None:
        self.messages = 0
        self.sessions = 0


class SinkProtocol(asyncio.Protocol):
    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.buf = bytearray()
        self.in_data = False
        self.at_start = False
        self.chunk_left = 0  # BDAT (RFC 3030): octets of the current chunk still to come
        self.chunk_last = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(GREETING)

    def connection_lost(self, exc) -> None:
        self.counter.sessions += 1

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out = []
        pos = 0
        while True:
            if self.chunk_left:
                took = min(self.chunk_left, len(buf) - pos)
                pos += took
                self.chunk_left -= took
                if self.chunk_left:
                    break
                if self.chunk_last:
                    self.counter.messages += 1
                    out.append(QUEUED)
                else:
                    out.append(OK)
                continue
            if self.in_data:
                if self.at_start and buf.startswith(b".\r\n", pos):
                    pos += 3  # an empty message
                else:
                    i = buf.find(END, pos)
                    if i < 0:
                        # Only the last four bytes can begin a terminator that ends later.
                        if len(buf) - pos > 4:
                            pos = len(buf) - 4
                            self.at_start = False
                        break
                    pos = i + len(END)
                self.in_data = False
                self.counter.messages += 1
                out.append(QUEUED)
                continue
            i = buf.find(b"\r\n", pos)
            if i < 0:
                break
            verb = bytes(buf[pos:pos + 4]).upper()
            line = bytes(buf[pos:i])
            pos = i + 2
            if verb == b"BDAT":
                words = line.split()
                if len(words) < 2 or not words[1].isdigit():
                    out.append(b"501 5.5.4 Syntax: BDAT size [LAST]\r\n")
                    continue
                self.chunk_left = int(words[1])
                self.chunk_last = len(words) > 2 and words[2].upper() == b"LAST"
                if not self.chunk_left:  # "BDAT 0 LAST" ends a message at once
                    if self.chunk_last:
                        self.counter.messages += 1
                    out.append(QUEUED if self.chunk_last else OK)
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP", b"HELO"):
                out.append(OK)
            elif verb == b"EHLO":
                out.append(EHLO)
            elif verb == b"DATA":
                self.in_data = True
                self.at_start = True
                out.append(DATA_GO)
            elif verb == b"QUIT":
                out.append(BYE)
                self.transport.write(b"".join(out))
                self.transport.close()
                return
            else:
                out.append(UNKNOWN)
        del buf[:pos]
        if out:
            self.transport.write(b"".join(out))


async def report(counter: Counter, every: float) -> None:
    last = -1
    out = sys.stdout
    while True:
        if counter.messages != last:
            last = counter.messages
            out.write(f"sess={counter.sessions} quit=0 mesg={last}\r")
            out.flush()
        await asyncio.sleep(every)


async def serve(host: str, port: int, every: float) -> None:
    counter = Counter()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkProtocol(counter), host, port, backlog=512,
                                      reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reporter = asyncio.create_task(report(counter, every))
    async with server:
        await stop.wait()
    reporter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reporter
    sys.stdout.write(f"sess={counter.sessions} quit=0 mesg={counter.messages}\r")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--report-every", type=float, default=0.02, help="seconds between count lines")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.report_every))


if __name__ == "__main__":
    main()
