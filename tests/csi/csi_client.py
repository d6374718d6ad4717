"""A CSI client acting as kubelet, and the plugin process under test.

The stubs are generated at test time from src/csi/csi.proto with Debian's
protoc (--python_out) and called through grpcio's generic unary API, so no
grpc_tools package is needed.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

from support import processes

SOURCE_DIR = Path(os.environ.get("OCIFS_SOURCE_DIR", Path(__file__).resolve().parents[2]))
DRIVER_NAME = "oci-fs.csi.oci-fs.io"

_pb2 = None


def pb2():
    """The generated csi_pb2 module (generated once per run)."""
    global _pb2
    if _pb2 is None:
        out = processes.test_root() / "csi-stubs"
        out.mkdir(exist_ok=True)
        subprocess.run(["protoc", f"-I{SOURCE_DIR / 'src/csi'}", f"--python_out={out}",
                        str(SOURCE_DIR / "src/csi/csi.proto")], check=True)
        sys.path.insert(0, str(out))
        _pb2 = importlib.import_module("csi_pb2")
    return _pb2


class CsiClient:
    """Calls `/csi.v1.<Service>/<Method>` on a unix socket."""

    def __init__(self, socket_path: Path):
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")

    def call(self, service: str, method: str, request, timeout: float = 120):
        pb = pb2()
        response_type = getattr(pb, method + "Response")
        if method == "Probe":
            response_type = pb.ProbeResponse
        fn = self.channel.unary_unary(f"/csi.v1.{service}/{method}",
                                      request_serializer=lambda m: m.SerializeToString(),
                                      response_deserializer=response_type.FromString)
        return fn(request, timeout=timeout)

    def identity(self, method: str, **fields):
        return self.call("Identity", method, getattr(pb2(), method + "Request")(**fields))

    def node(self, method: str, **fields):
        return self.call("Node", method, getattr(pb2(), method + "Request")(**fields))

    def close(self):
        self.channel.close()


def capability(mode: str = "SINGLE_NODE_WRITER", block: bool = False):
    pb = pb2()
    cap = pb.VolumeCapability(access_mode=pb.VolumeCapability.AccessMode(
        mode=pb.VolumeCapability.AccessMode.Mode.Value(mode)))
    if block:
        cap.block.SetInParent()
    else:
        cap.mount.SetInParent()
    return cap


class Plugin:
    """The node plugin process: `oci-fs csi` (or the ocifs-csi-plugin test driver)."""

    def __init__(self, command: list[str], workdir: Path, extra_args: list[str] = ()):
        self.command = command
        self.workdir = workdir
        self.socket = workdir / "plugin" / "csi.sock"
        self.state_dir = workdir / "state"
        self.cache_dir = workdir / "cache"
        self.log_path = workdir / "plugin.log"
        self.extra_args = list(extra_args)
        self.env_extra: dict[str, str] = {}  # more environment for the plugin (and its mounts)
        self.proc: subprocess.Popen | None = None
        self.client: CsiClient | None = None

    def start(self, wait_ready: bool = True) -> "Plugin":
        args = self.command + ["--endpoint", f"unix://{self.socket}", "--node-id", "node-1",
                               "--state-dir", str(self.state_dir),
                               "--cache-dir", str(self.cache_dir)] + self.extra_args
        self.socket.unlink(missing_ok=True)  # a killed plugin's stale socket
        self.log = open(self.log_path, "ab")
        self.proc = processes.spawn(args, stdout=self.log, stderr=subprocess.STDOUT,
                                    env=processes.isolated_env(self.env_extra))
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            assert self.proc.poll() is None, f"plugin exited: {self.log_text()}"
            assert time.monotonic() < deadline, "plugin socket did not appear"
            time.sleep(0.05)
        self.client = CsiClient(self.socket)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while True:
            try:
                r = self.client.identity("Probe")
                if r.HasField("ready") and r.ready.value:
                    return
            except grpc.RpcError as e:  # not listening yet
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            assert time.monotonic() < deadline, "plugin never became ready"
            time.sleep(0.1)

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        processes.stop(self.proc)
        self.client.close()

    def stop(self):
        if self.client:
            self.client.close()
        if self.proc:
            processes.stop(self.proc, timeout=15)
            self.log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def records(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in (self.state_dir / "volumes").glob("*.json")]

    def secret_files(self) -> list[Path]:
        return list((self.state_dir / "secrets").glob("*"))
