"""Test hosts: network namespaces on a bridge, each with its own address, that a test can cut off.

The root namespace is the "network" (10.77.N.1 on the bridge, where Redis, the database
and the relays listen); each host is a namespace with a veth pair whose far end is a port on
the bridge. Cutting a host takes its bridge port down: its packets go nowhere and nothing
answers, as when a machine's switch port or cable fails (the host is not told).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass


class NetnsUnavailable(Exception):
    """Why network namespaces cannot be made here (not root, no `ip`, not permitted)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def unavailable() -> str | None:
    """None when this process may make network namespaces, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "no `ip` command (Debian: apt-get install iproute2)"
    probe = f"alerts-probe-{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` is not permitted here: {made.stderr.strip() or made.returncode}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    name: str  # "a", "b", …
    netns: str
    ip: str
    port: str  # its veth's end on the bridge (in the root namespace)

    @property
    def wrap(self) -> list[str]:
        """The command prefix that runs a process on this host."""
        return ["ip", "netns", "exec", self.netns]


class TestNetwork:
    """A bridge and its hosts; `remove` kills whatever still runs on them and deletes it all."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, hosts: int = 2):
        tag = uuid.uuid4().hex[:6]
        self.bridge = f"albr{tag}"
        self.subnet = self._free_subnet()
        self.root_ip = f"10.77.{self.subnet}.1"
        self.hosts = [Host(name=chr(ord("a") + i), netns=f"alerts-{tag}-{chr(ord('a') + i)}",
                           ip=f"10.77.{self.subnet}.{2 + i}", port=f"al{tag}{chr(ord('a') + i)}")
                      for i in range(hosts)]

    @staticmethod
    def _free_subnet() -> int:
        """10.77.N.0/24 with N unused on this machine (0 first, as the docs show)."""
        used = _ip("-o", "-4", "addr").stdout + _ip("-4", "route").stdout
        for n in [0, *random.sample(range(1, 255), 254)]:
            if f"10.77.{n}." not in used:
                return n
        raise NetnsUnavailable("no free 10.77.N.0/24")

    def create(self) -> TestNetwork:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.root_ip}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for h in self.hosts:
                _ip("netns", "add", h.netns)
                _ip("link", "add", h.port, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
                _ip("link", "set", h.port, "master", self.bridge, "up")
                _ip("-n", h.netns, "link", "set", "lo", "up")
                _ip("-n", h.netns, "addr", "add", f"{h.ip}/24", "dev", "eth0")
                _ip("-n", h.netns, "link", "set", "eth0", "up")
        except subprocess.CalledProcessError as exc:
            self.remove()
            raise NetnsUnavailable(f"{' '.join(exc.cmd)}: {exc.stderr.strip()}") from exc
        return self

    def wait_reachable(self, port: int, timeout: float = 10) -> None:
        """Until every host reaches the root side on `port` (the bridge's ports take a moment)."""
        deadline = time.monotonic() + timeout
        for h in self.hosts:
            while True:
                probe = subprocess.run(
                    [*h.wrap, sys.executable, "-c",
                     f"import socket; socket.create_connection(('{self.root_ip}', {port}), 1).close()"],
                    capture_output=True, timeout=30)
                if probe.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"host {h.name} cannot reach {self.root_ip}:{port}: "
                                         f"{probe.stderr.decode(errors='replace')[-300:]}")
                time.sleep(0.1)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def cut(self, host: Host) -> None:
        """Its bridge port down: every packet to or from the host is lost from now on."""
        _ip("link", "set", host.port, "down")

    def remove(self) -> None:
        """Kill what still runs in the hosts (by pid), then delete namespaces, veths, bridge."""
        for h in self.hosts:
            pids = _ip("netns", "pids", h.netns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", h.netns, check=False)  # its eth0 goes, and with it the peer
            _ip("link", "del", h.port, check=False)
        _ip("link", "del", self.bridge, check=False)
