"""The RSA floor measured while a benchmark runs: a few signatures every so often, each timed
as this thread's CPU, until standard input closes; then their CPU times (ms) as JSON.

    python -m bench.floor_sampler KEY.pem [--every 0.25] [--each 4]

The floor measured before and after a run misses how the machine's speed moves during it
(a shared host's other load); measured throughout, it meets the same conditions as the work
it is compared with. It costs the run about two CPUs in a hundred.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("key")
    p.add_argument("--every", type=float, default=0.25, help="seconds between rounds")
    p.add_argument("--each", type=int, default=4, help="signatures a round")
    args = p.parse_args(argv)
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    with open(args.key, "rb") as fh:
        key = serialization.load_pem_private_key(fh.read(), password=None)
    data, pad, digest = bytes(range(200)) * 3, padding.PKCS1v15(), hashes.SHA256()
    for _ in range(10):
        key.sign(data, pad, digest)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    print("ready", flush=True)
    samples: list[float] = []
    while True:  # a round at once, so that even a short run has one
        key.sign(data, pad, digest)  # after a sleep, caches are cold: this one is not counted
        for _ in range(args.each):
            c0 = time.thread_time()
            key.sign(data, pad, digest)
            samples.append(1000 * (time.thread_time() - c0))
        if done.wait(args.every):
            break
    print(json.dumps(samples), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
