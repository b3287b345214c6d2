"""Real etcd (Debian ``etcd-server``) for the cluster tests.

``EtcdCluster`` starts one or three members on free loopback ports, each in a
data directory of its own under a temp dir, waits until every member answers
``/health``, and always stops them (the fixtures stop them even when a test
fails).  Tests kill single members (``kill(i)``) to see the cluster survive
the loss of one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from daemon_fixtures import stop_process, wait_for
from icinga_fixtures import free_port

ETCD = shutil.which("etcd") or "/usr/bin/etcd"




@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data: Path
    log: Path
    proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                return json.load(r).get("health") == "true"
        except (OSError, ValueError):
            return False


@dataclass
class EtcdCluster:
    root: Path
    members: List[Member] = field(default_factory=list)

    @property
    def urls(self) -> List[str]:
        return [m.url for m in self.members]

    def start(self, size: int = 1) -> "EtcdCluster":
        for i in range(size):
            name = f"m{i}"
            d = self.root / name
            d.mkdir(parents=True)
            self.members.append(Member(name, free_port(), free_port(), d / "data", d / "etcd.log"))
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            argv = [ETCD, "--name", m.name, "--data-dir", str(m.data),
                    "--listen-client-urls", m.url, "--advertise-client-urls", m.url,
                    "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", self.root.name, "--log-outputs", "stderr",
                    # Loopback: elections in tens of ms, not the WAN-sized defaults.
                    "--heartbeat-interval", "50", "--election-timeout", "500"]
            with open(m.log, "wb") as log:
                m.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        for m in self.members:
            wait_for(m.healthy, 20.0, f"etcd member {m.name} healthy", lambda m=m: m.log.read_text()[-2000:], m.proc)
        return self

    def kill(self, index: int, sig: int = signal.SIGKILL) -> Member:
        m = self.members[index]
        assert m.proc is not None
        m.proc.send_signal(sig)
        m.proc.wait(timeout=10)
        return m

    def leader_index(self) -> Optional[int]:
        """The member that is raft leader now (None when no member says so)."""
        for i, m in enumerate(self.members):
            if m.proc is None or m.proc.poll() is not None:
                continue
            try:
                req = urllib.request.Request(m.url + "/v3/maintenance/status", data=b"{}", method="POST")
                with urllib.request.urlopen(req, timeout=1) as r:
                    st = json.load(r)
            except (OSError, ValueError):
                continue
            if st.get("leader") == st.get("header", {}).get("member_id"):
                return i
        return None

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None:
                with contextlib.suppress(AssertionError):
                    stop_process(m.proc, timeout=10.0)


@contextlib.contextmanager
def etcd_cluster(root: Path, size: int = 1) -> Iterator[EtcdCluster]:
    c = EtcdCluster(root)
    try:
        yield c.start(size)
    finally:
        c.stop()


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    """One etcd member on loopback."""
    assert shutil.which("etcd"), "etcd-server is not installed: run ./setup.sh"
    with etcd_cluster(tmp_path / "etcd", 1) as c:
        yield c


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[EtcdCluster]:
    """Three etcd members on loopback (for the member-loss tests)."""
    assert shutil.which("etcd"), "etcd-server is not installed: run ./setup.sh"
    with etcd_cluster(tmp_path / "etcd", 3) as c:
        yield c


__all__ = ["EtcdCluster", "Member", "etcd", "etcd3", "etcd_cluster"]
