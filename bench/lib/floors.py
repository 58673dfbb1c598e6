"""The per-message CPU floor: one RSA-2048 signature, before, during and after a run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.lib import BENCH_DIR, BenchError


def rsa_floor(key_pem: bytes, samples: int = 400, data: bytes | None = None) -> dict:
    """One RSA PKCS#1 v1.5 SHA-256 signature through `cryptography` (OpenSSL), the floor a
    DKIM-signed message's CPU is quoted against: the median of `samples` signatures, each timed
    on its own, as this thread's CPU time (comparable with workers' user+sys) and as wall time.
    `data` defaults to 600 bytes, about a DKIM header block."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BenchError("the RSA floor needs an RSA key")
    data = data if data is not None else bytes(range(200)) * 3
    pad, digest = padding.PKCS1v15(), hashes.SHA256()
    for _ in range(10):  # warm up (first calls set up OpenSSL's blinding, caches)
        key.sign(data, pad, digest)
    cpu, wall = [], []
    for _ in range(samples):
        c0, w0 = time.thread_time(), time.perf_counter()
        key.sign(data, pad, digest)
        w1, c1 = time.perf_counter(), time.thread_time()
        cpu.append(c1 - c0)
        wall.append(w1 - w0)
    cpu.sort()
    wall.sort()
    return {"what": f"RSA-{key.key_size} PKCS#1 v1.5 SHA-256 signature, cryptography {_crypto_version()} "
                    "(OpenSSL)",
            "samples": samples,
            "cpu_ms_median": round(1000 * cpu[len(cpu) // 2], 4),
            "wall_ms_median": round(1000 * wall[len(wall) // 2], 4),
            "wall_ms_p10_p90": [round(1000 * wall[len(wall) // 10], 4),
                                round(1000 * wall[len(wall) * 9 // 10], 4)]}


class FloorSampler:
    """`floor_sampler.py` in a process of its own while a run goes on: the RSA floor measured
    throughout the run, under the run's own conditions, beside `rsa_floor` before and after."""

    def __init__(self, key_path: Path, every: float = 0.25, each: int = 4):
        script = BENCH_DIR / "floor_sampler.py"
        self.proc = subprocess.Popen([sys.executable, str(script), str(key_path), "--every", str(every),
                                      "--each", str(each)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise BenchError("the RSA floor sampler did not start")

    def stop(self) -> dict:
        out, _ = self.proc.communicate("", timeout=30)
        samples = sorted(json.loads(out.strip().splitlines()[-1]))
        if not samples:
            raise BenchError("the RSA floor sampler took no sample (the run was too short)")
        return {"samples": len(samples), "cpu_ms_median": round(samples[len(samples) // 2], 4),
                "cpu_ms_p10_p90": [round(samples[len(samples) // 10], 4),
                                   round(samples[len(samples) * 9 // 10], 4)]}


def _crypto_version() -> str:
    import cryptography

    return cryptography.__version__
