"""The least CPU Python can spend on one personalised, DKIM-signed message handed to a relay,
as a ratio to one RSA-2048 signature: how close to the floor a worker written in Python can get.

    python -m bench.message_floor [--messages 20000] [--size 15000]

An experiment for the worker's CPU per message (issue 11). One loop, one process, no
database, no pacing, no recording of outcomes: per message only what every alert needs:
four HMACs (the click token, the signing reference, the unsubscribe token, the return path),
eleven slot values put between pre-encoded pieces of a body, the body's SHA-256, a header
block, one RSA signature, and the app's pipelined DATA (`mail.smtp.Pipeline`) to the Python
sink. The gap between this loop's ratio and `blast.py`'s is what the engine's own work costs:
claims, per-recipient state, pacing, batches, its general builders.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import sys
import time

from bench.lib import BenchError
from bench.lib.floors import rsa_floor
from bench.lib.harness import run_bench, table
from bench.lib.sinks import Sink
from bench.smtp_costs import message

SLOTS = 11


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--size", type=int, default=14_000,
                   help="bytes of body (with the headers about an alert's 15 kB)")
    p.add_argument("--json", dest="json_path", default=None)
    return p.parse_args(argv)


def _loop(url: str, body: bytes, n: int, key_pem: bytes) -> dict:
    """Build, sign and send `n` messages; thread CPU of each part (timed per part, then whole)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    from alerts.mail import smtp

    key = serialization.load_pem_private_key(key_pem, password=None)
    pad, sha = padding.PKCS1v15(), hashes.SHA256()
    secret = os.urandom(32)
    step = len(body) // (SLOTS + 1)
    pieces = [body[i * step:(i + 1) * step] for i in range(SLOTS)] + [body[SLOTS * step:]]
    constant = b"from:Advocates <alerts@example.org>\r\nsubject:Act now\r\nlist-id:<alerts.example.org>\r\n"

    def return_path(i: int) -> str:
        return f"b-{hmac.digest(secret, b'p%d' % i, 'sha256')[:6].hex()}@example.org"

    def build(i: int) -> tuple[bytes, bytes, bytes]:
        d = b"%d" % i
        token = base64.urlsafe_b64encode(hmac.digest(secret, b"c" + d, "sha256")[:12])
        ref = base64.urlsafe_b64encode(hmac.digest(secret, b"r" + d, "sha256")[:12])
        unsubscribe = base64.urlsafe_b64encode(hmac.digest(secret, b"u" + d, "sha1"))
        link = b"https://alerts.example.org/r/" + token + b"/"
        values = [link + b"0?r=" + ref, link + b"1?r=" + ref, link + b"2?r=" + ref, unsubscribe, link + b"3"]
        values = (values * 3)[:SLOTS - 1] + [d]
        out = [pieces[0]]
        for value, piece in zip(values, pieces[1:], strict=True):
            out += (value, piece)
        filled = b"".join(out)
        head = (b"To: reader%d@example.net\r\nMessage-ID: <%d.%s@example.org>\r\n"
                b"List-Unsubscribe: <https://alerts.example.org/u/%s>\r\n" % (i, i, token, unsubscribe))
        body_hash = base64.b64encode(hashlib.sha256(filled).digest())
        tags = (b"v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s1; h=from:to:subject:"
                b"message-id:list-id:list-unsubscribe; bh=" + body_hash + b"; b=")
        return constant + head.lower() + b"dkim-signature:" + tags, tags, head + b"\r\n" + filled

    def sign(to_sign: bytes) -> bytes:
        return base64.b64encode(key.sign(to_sign, pad, sha))

    # Each part on its own over a tenth of the messages, then the whole loop over all of them.
    part_n = max(1, n // 10)
    c0 = time.thread_time()
    built = [build(i) for i in range(part_n)]
    c1 = time.thread_time()
    signed = [sign(b[0]) for b in built]
    c2 = time.thread_time()
    parts = {"build_us": 1e6 * (c1 - c0) / part_n, "sign_us": 1e6 * (c2 - c1) / part_n}

    pipe = smtp.Pipeline(smtp.connect(url))
    last = part_n + n - 1
    sender = return_path(0)

    def send(i: int, data: bytes) -> None:
        """As the app sends: the next message's envelope goes out with this one's data."""
        nonlocal sender
        then = (return_path(i + 1), f"reader{i + 1}@example.net") if i < last else None
        pipe.send(sender, f"reader{i}@example.net", smtp.dot_stuffed(data), then)
        sender = then[0] if then else ""

    try:
        c3 = time.thread_time()
        for i, (_, tags, rest) in enumerate(built):
            send(i, b"DKIM-Signature: " + tags + signed[i] + b"\r\n" + rest)
        parts["send_us"] = 1e6 * (time.thread_time() - c3) / part_n
        del built, signed
        c4 = time.thread_time()
        for i in range(part_n, last + 1):
            to_sign, tags, rest = build(i)
            data = b"DKIM-Signature: " + tags + sign(to_sign) + b"\r\n" + rest
            send(i, data)
        whole = time.thread_time() - c4
    finally:
        pipe.close()
    return {**{k: round(v, 2) for k, v in parts.items()}, "whole_ms": 1000 * whole / n,
            "sent": part_n + n, "size": len(data)}


def run(args, workdir) -> dict:
    from alerts.mail.dkim import generate_rsa_key

    if args.messages < 10:
        raise BenchError("--messages must be at least 10")
    pem, _ = generate_rsa_key()
    before = rsa_floor(pem, samples=300)
    sink = Sink("python")
    try:
        start = sink.settle(0.1)
        loop = _loop(sink.url, message(args.size), args.messages, pem)
        counted = sink.wait_for(start + loop["sent"], 30) - start
    finally:
        sink.stop()
    after = rsa_floor(pem, samples=300)
    floor_ms = (before["cpu_ms_median"] + after["cpu_ms_median"]) / 2
    if counted != loop["sent"]:
        raise BenchError(f"the sink counted {counted} of {loop['sent']}")
    return {"messages": args.messages, "counted": counted, "message_bytes": loop["size"],
            "rsa_floor_ms": round(floor_ms, 4), "loop_ms": round(loop["whole_ms"], 4),
            "ratio": round(loop["whole_ms"] / floor_ms, 3),
            "parts_us": {k: loop[k] for k in ("build_us", "sign_us", "send_us")}}


def render(r: dict) -> str:
    p = r["parts_us"]
    rows = [("messages", f"{r['messages']:,} of {r['message_bytes']:,} bytes "
                         f"(the sink counted {r['counted']:,} with the parts' own)"),
            ("RSA floor (same run)", f"{r['rsa_floor_ms']:.3f} ms CPU a signature "
                                     "(median, before and after)"),
            ("least Python a message", f"{r['loop_ms']:.3f} ms CPU = {r['ratio']:.3f}x the RSA floor"),
            ("  of which, timed apart", f"build {p['build_us']:.1f} µs, sign {p['sign_us']:.1f} µs, "
                                        f"SMTP {p['send_us']:.1f} µs")]
    return table(rows, "The floor of a Python sender: one loop, no database, no pacing")


def main(argv=None) -> int:
    return run_bench("message_floor", parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
