"""The CSI plugin's /metrics (docs/metrics.md) and volume health.

The plugin runs with --metrics-address on a free loopback port and launches
real `oci-fs mount`s against a docker-registry started by the harness. What
the page counts is checked against the registry's own request log.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import images, processes
from support.registry import free_port
from csi_client import capability, pb2
from test_csi import EPHEMERAL, _kill_mount, _mount_pids, target_of
from test_csi import backend, make_plugin  # noqa: F401  (pytest fixtures used by name)

DISK_BYTES = 5 << 20


def noisy_disk(seed: str) -> bytes:
    """Incompressible bytes: the gzip layer is as large as the disk, so reading it takes several range requests."""
    return random.Random(seed).randbytes(DISK_BYTES)


def scrape(port: int) -> dict:
    """The page as {family name: [samples]}, parsed by prometheus_client."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for f in families.values():
        assert f.documentation, f"{f.name} has no HELP"
    return families


def value(families: dict, family: str, sample: str, **labels) -> float:
    found = [s.value for s in families[family].samples
             if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{sample}{labels}: {found}"
    return found[0]


def check_histogram(families: dict, name: str) -> int:
    """Buckets are cumulative and monotonic, +Inf equals _count; returns the count."""
    fam = families[name]
    assert fam.type == "histogram"
    buckets = [(float(s.labels["le"]), s.value) for s in fam.samples if s.name == name + "_bucket"]
    assert buckets and buckets[-1][0] == float("inf")
    assert [b[0] for b in buckets] == sorted(b[0] for b in buckets)
    counts = [b[1] for b in buckets]
    assert counts == sorted(counts), f"{name}: buckets not monotonic: {counts}"
    count = value(families, name, name + "_count")
    assert counts[-1] == count
    assert value(families, name, name + "_sum") >= 0
    return int(count)


def mounts_blob_gets(registry, layers: set, configs: set) -> list:
    """The blob GETs the volumes' mounts sent, from the registry's log: every
    GET of a layer, and every GET of an image config but the first (each
    publish runs `oci-fs inspect`, a process of the plugin, before the mount;
    the metrics count the mounts only, docs/metrics.md)."""
    out, seen = [], set()
    for r in registry.request_log():
        if r.method != "GET" or not r.is_blob:
            continue
        if r.digest in layers:
            out.append(r)
        elif r.digest in configs:
            if r.digest in seen:
                out.append(r)
            seen.add(r.digest)
    return out


def publish(plugin, target: Path, ref: str, volume_id: str):
    plugin.client.node("NodePublishVolume", volume_id=volume_id, target_path=str(target),
                       volume_capability=capability("SINGLE_NODE_WRITER"), readonly=True,
                       volume_context=dict(EPHEMERAL, image=ref))


def test_metrics_add_up_to_the_registry_log(make_plugin, backend, workdir):
    registry = backend.registry
    port = free_port()
    backend.plugin_extra = backend.plugin_extra + ["--metrics-address", f"127.0.0.1:{port}"]
    plugin = make_plugin()

    disks, layers, configs, targets = {}, set(), set(), []
    for name in ("metrics-a", "metrics-b"):
        data = noisy_disk(name)
        img = images.containerdisk(data)
        images.push(registry, name, "v1", img, creds=None)
        layers.update(layer.digest for layer in img.layers)
        configs.add(img.config.digest)
        target = target_of(workdir, name)
        publish(plugin, target, registry.ref(name, "v1"), "vol-" + name)
        disks[target] = data
        targets.append(target)

    # Both volumes are read at once, whole; the bytes are the pushed ones.
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda t: (t / "disk.img").read_bytes(), targets))
    for target, data in zip(targets, got):
        assert data == disks[target]

    # The mounts publish every second and may still fetch ahead in the
    # background: wait until the page agrees with the registry's log.
    deadline = time.monotonic() + 60
    while True:
        gets = mounts_blob_gets(registry, layers, configs)
        families = scrape(port)
        requests = value(families, "ocifs_blob_requests", "ocifs_blob_requests_total", registry=registry.host)
        fetched = value(families, "ocifs_blob_bytes", "ocifs_blob_bytes_total", registry=registry.host)
        log_bytes = sum(r.written for r in gets)
        # Read bytes too: the files may still be the ones written before our reads.
        read_all = value(families, "ocifs_fuse_read_bytes", "ocifs_fuse_read_bytes_total") >= 2 * DISK_BYTES
        if ((requests, fetched) == (len(gets), log_bytes) and read_all) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert all(r.status in (200, 206) for r in gets)
    assert len(gets) >= 2  # at least one range request per volume
    assert (requests, fetched) == (len(gets), log_bytes), "the page's blob requests and bytes against the registry log"
    assert fetched >= 2 * DISK_BYTES  # incompressible: each layer is at least its disk

    ok = value(families, "ocifs_blob_fetches", "ocifs_blob_fetches_total", registry=registry.host, outcome="ok")
    errors = value(families, "ocifs_blob_fetches", "ocifs_blob_fetches_total", registry=registry.host,
                   outcome="error")
    assert errors == 0 and ok >= 2
    assert check_histogram(families, "ocifs_registry_fetch_duration_seconds") == ok + errors
    reads = value(families, "ocifs_fuse_reads", "ocifs_fuse_reads_total")
    assert check_histogram(families, "ocifs_fuse_read_duration_seconds") == reads
    assert value(families, "ocifs_fuse_read_bytes", "ocifs_fuse_read_bytes_total") >= 2 * DISK_BYTES
    assert value(families, "ocifs_volumes", "ocifs_volumes", state="healthy") == 2
    assert value(families, "ocifs_errors", "ocifs_errors_total", kind="fuse_read") == 0
    assert value(families, "ocifs_cache_bound_bytes", "ocifs_cache_bound_bytes") > 0
    assert value(families, "ocifs_cache_used_bytes", "ocifs_cache_used_bytes") >= 2 * DISK_BYTES
    assert value(families, "ocifs_cache_misses", "ocifs_cache_misses_total") > 0
    assert value(families, "ocifs_takeovers", "ocifs_takeovers_total") == 0

    # A takeover: the serving process of one volume is killed; its keeper
    # starts another, and the counters of the dead one still count.
    before = requests
    os.kill(mount_state(targets[0])["server_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        families = scrape(port)
        if value(families, "ocifs_takeovers", "ocifs_takeovers_total") == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert value(families, "ocifs_takeovers", "ocifs_takeovers_total") == 1
    assert value(families, "ocifs_blob_requests", "ocifs_blob_requests_total", registry=registry.host) >= before
    assert (targets[0] / "disk.img").read_bytes()[:4096] == disks[targets[0]][:4096]


def mount_state(target: Path) -> dict:
    """The kept mount's state file (docs/mount-state-format.md) in the plugin's OCIFS_RUN_DIR."""
    for path in (processes.test_root() / "env" / "mounts").glob("*.json"):
        state = json.loads(path.read_text())
        if state["mountpoint"] == str(target):
            return state
    raise AssertionError(f"no state file for {target}")


def test_a_dead_mount_is_reported_abnormal_with_the_reason(make_plugin, backend, workdir):
    # The watcher would remount the dead volume; here it waits an hour, so
    # the test sees what kubelet sees between the death and the repair.
    plugin = make_plugin(env={"OCIFS_CSI_WATCH_SECONDS": "3600"})
    ref = backend.image("health")
    target = target_of(workdir, "pod-health")
    publish(plugin, target, ref, "vol-health")
    caps = plugin.client.node("NodeGetCapabilities")
    rpc = pb2().NodeServiceCapability.RPC
    assert rpc.VOLUME_CONDITION in [c.rpc.type for c in caps.capabilities]
    stats = plugin.client.node("NodeGetVolumeStats", volume_id="vol-health", volume_path=str(target))
    assert stats.volume_condition.abnormal is False

    # Kill the keeper and its serving process (the mount's process group).
    pids = _mount_pids(target)
    assert pids, "no keeper found for the volume"
    for pid in pids:
        _kill_mount(pid)
    deadline = time.monotonic() + 30
    while True:
        stats = plugin.client.node("NodeGetVolumeStats", volume_id="vol-health", volume_path=str(target))
        if stats.volume_condition.abnormal or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert stats.volume_condition.abnormal is True
    message = stats.volume_condition.message
    assert "disconnected" in message and "serving process is gone" in message, message
    assert not stats.usage  # no numbers for a mount that does not answer


def wait_condition(plugin, volume_id: str, target: Path, abnormal: bool, timeout: float):
    """NodeGetVolumeStats until its volume_condition.abnormal is `abnormal` (or the deadline); the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        stats = plugin.client.node("NodeGetVolumeStats", volume_id=volume_id, volume_path=str(target))
        if stats.volume_condition.abnormal == abnormal or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)


def test_a_stopped_serving_process_is_reported_stalled_until_it_continues(make_plugin, backend, workdir):
    # The watcher runs every second: it must leave a stalled mount alone.
    port = free_port()
    backend.plugin_extra = backend.plugin_extra + ["--metrics-address", f"127.0.0.1:{port}"]
    plugin = make_plugin(env={"OCIFS_CSI_WATCH_SECONDS": "1"})
    ref = backend.image("stalled")
    target = target_of(workdir, "pod-stalled")
    publish(plugin, target, ref, "vol-stalled")
    assert (target / "disk.img").read_bytes() == backend.expected(ref)
    assert wait_condition(plugin, "vol-stalled", target, False, 5).volume_condition.abnormal is False

    # The serving process stops: FUSE requests queue and nobody answers them.
    server = mount_state(target)["server_pid"]
    processes.sigstop(server)
    try:
        started = time.monotonic()
        stats = wait_condition(plugin, "vol-stalled", target, True, 60)
        took = time.monotonic() - started
        families = scrape(port)
        watched = mount_state(target)["server_pid"]
    finally:
        os.kill(server, signal.SIGCONT)
    assert stats.volume_condition.abnormal is True
    message = stats.volume_condition.message
    assert "is stalled" in message and "did not answer stat/statfs" in message, message
    assert not stats.usage
    assert took < 55, f"NodeGetVolumeStats blocked on the stopped mount for {took:.0f} s"
    assert value(families, "ocifs_volumes", "ocifs_volumes", state="stalled") == 1
    assert watched == server, "the watcher replaced a stalled mount's server"

    # Continued, it answers again: normal, with usage, the same bytes.
    stats = wait_condition(plugin, "vol-stalled", target, False, 60)
    assert stats.volume_condition.abnormal is False, stats.volume_condition.message
    assert stats.usage
    assert (target / "disk.img").read_bytes() == backend.expected(ref)
    assert value(scrape(port), "ocifs_volumes", "ocifs_volumes", state="healthy") == 1


def timed_scrape(port: int) -> tuple[dict, float]:
    started = time.monotonic()
    families = scrape(port)
    return families, time.monotonic() - started


def test_a_scrape_probes_stalled_volumes_at_once(make_plugin, backend, workdir):
    # Three volumes whose serving processes stop: each probe waits its 5 s
    # timeout, so probed one after another a scrape would take over 15 s,
    # past Prometheus' default 10 s scrape timeout (docs/metrics.md).
    port = free_port()
    backend.plugin_extra = backend.plugin_extra + ["--metrics-address", f"127.0.0.1:{port}"]
    plugin = make_plugin()
    ref = backend.image("scrape")
    targets = [target_of(workdir, f"pod-scrape-{i}") for i in range(3)]
    for i, target in enumerate(targets):
        publish(plugin, target, ref, f"vol-scrape-{i}")
        assert (target / "disk.img").read_bytes() == backend.expected(ref)
    assert value(scrape(port), "ocifs_volumes", "ocifs_volumes", state="healthy") == 3

    servers = [mount_state(target)["server_pid"] for target in targets]
    stopped = []
    try:
        for server in servers:
            processes.sigstop(server)
            stopped.append(server)
        first, first_took = timed_scrape(port)
        second, second_took = timed_scrape(port)
    finally:
        for server in stopped:
            os.kill(server, signal.SIGCONT)
    assert first_took < 8, f"a scrape of 3 stalled volumes took {first_took:.1f} s"
    assert second_took < 8, f"the next scrape of 3 stalled volumes took {second_took:.1f} s"
    for families in (first, second):
        assert value(families, "ocifs_volumes", "ocifs_volumes", state="stalled") == 3
        assert value(families, "ocifs_volumes", "ocifs_volumes", state="healthy") == 0

    # Continued, they answer again: healthy, with the same bytes.
    deadline = time.monotonic() + 60
    while True:
        families = scrape(port)
        if value(families, "ocifs_volumes", "ocifs_volumes", state="healthy") == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert value(families, "ocifs_volumes", "ocifs_volumes", state="healthy") == 3
    assert value(families, "ocifs_volumes", "ocifs_volumes", state="stalled") == 0
    for target in targets:
        assert (target / "disk.img").read_bytes() == backend.expected(ref)


def test_failing_reads_are_reported_abnormal_until_a_minute_without_one(make_plugin, backend, workdir):
    registry = backend.registry
    # A registry that does not answer makes a read fail after about 4 s.
    backend.plugin_extra = backend.plugin_extra + ["--stall-timeout", "2", "--registry-timeout", "4"]
    plugin = make_plugin()
    # Uncompressed: no first pass streams the layer in the background, so
    # its end is fetched only when read.
    data = random.Random("failing").randbytes(32 << 20)
    images.push(registry, "failing", "v1", images.containerdisk(data, "none"), creds=None)
    target = target_of(workdir, "pod-failing")
    publish(plugin, target, registry.ref("failing", "v1"), "vol-failing")
    disk = target / "disk.img"
    with disk.open("rb") as f:
        assert f.read(4096) == data[:4096]
    assert wait_condition(plugin, "vol-failing", target, False, 5).volume_condition.abnormal is False

    # The registry stops answering; the disk's end, not fetched yet, cannot be read.
    with registry.paused():
        with disk.open("rb") as f:
            f.seek(len(data) - 4096)
            with pytest.raises(OSError) as failed:
                f.read(4096)
        assert failed.value.errno == errno.EIO
        stats = wait_condition(plugin, "vol-failing", target, True, 30)
    assert stats.volume_condition.abnormal is True
    message = stats.volume_condition.message
    assert "reads fail" in message and "FUSE reads failed" in message and registry.host in message, message
    assert not stats.usage

    # The registry answers again: the same read succeeds at once, with the
    # pushed bytes, but the failure is reported for a minute after it happened.
    failed_at = time.monotonic()
    with disk.open("rb") as f:
        f.seek(len(data) - 4096)
        assert f.read(4096) == data[-4096:]
    stats = wait_condition(plugin, "vol-failing", target, False, 120)
    assert stats.volume_condition.abnormal is False, stats.volume_condition.message
    assert time.monotonic() - failed_at > 30, "the failure was forgotten long before its minute"
    assert stats.usage
