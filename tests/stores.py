"""Real etcd and ZooKeeper for namerd's tests: started as processes on loopback, with temporary data
directories and free ports, stopped (and their directories removed) whatever ends the test.

``EtcdServer()`` runs Debian's ``etcd`` with the v2 keys API on (``--enable-v2=true``, which etcd
3.4 and 3.5 need); ``ZooKeeperServer()`` runs Debian's ZooKeeper (its jar under /usr/share/java) in a
small JVM. Both wait (bounded) until they answer, and can be stopped and started again on the same
port and data (a store that goes down and comes back). Tests that need one and find the binaries
missing fail: CI installs them (``.ci/run``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from typing import Iterator, List, Optional

import pytest

from proxyproc import child_options

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ZK_JARS = ["/usr/share/java/zookeeper.jar"]
ZK_CONF_DIR = "/etc/zookeeper/conf"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


class _Process:
    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen] = None
        self.dir = tempfile.mkdtemp(prefix=f"pyproxy-{type(self).__name__.lower()}-")
        self.log_path = os.path.join(self.dir, "out.log")

    def _command(self) -> List[str]:
        raise NotImplementedError

    def _answers(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                         **child_options())  # type: ignore[call-overload]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self._answers():
                return
            time.sleep(0.1)
        tail = open(self.log_path, errors="replace").read()[-2000:]
        self.stop()
        raise RuntimeError(f"{type(self).__name__} did not start:\n{tail}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class EtcdServer(_Process):
    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        self.peer_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> List[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            ETCD, "--name", "test", "--data-dir", os.path.join(self.dir, "data"),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"test={peer}", "--enable-v2=true", "--log-level", "warn",
        ]

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/v2/keys/", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False


class ZooKeeperServer(_Process):
    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        with open(os.path.join(self.dir, "zoo.cfg"), "w") as f:
            f.write(
                f"tickTime=500\ndataDir={self.dir}/data\nclientPort={self.port}\nclientPortAddress=127.0.0.1\n"
                "admin.enableServer=false\n4lw.commands.whitelist=ruok\nmaxSessionTimeout=60000\n"
            )

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _command(self) -> List[str]:
        java = shutil.which("java") or "/usr/bin/java"
        cp = ":".join([ZK_CONF_DIR] + ZK_JARS)
        return [java, "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", f"-Dzookeeper.log.dir={self.dir}",
                "-cp", cp, "org.apache.zookeeper.server.quorum.QuorumPeerMain", os.path.join(self.dir, "zoo.cfg")]

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"ruok")
                return s.recv(16) == b"imok"
        except OSError:
            return False


@pytest.fixture(scope="session")
def etcd() -> Iterator[EtcdServer]:
    server = EtcdServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def zookeeper() -> Iterator[ZooKeeperServer]:
    server = ZooKeeperServer()
    try:
        server.start()
        yield server
    finally:
        server.close()
