"""``--ray HEAD:PORT`` on a two-node Ray cluster on this machine: a head (no CPUs, so no task runs there) and a
worker node started as separate ``ray start`` processes with their own temp folders. The worker sees its own empty
runs root (a private tmpfs mounted over it, as on a machine without a shared filesystem), so each fold's part is
written there and must travel back to the driver, where the merged run is scored."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import datagen
import podium
from podium.runs.run import Run, experiment_log

ray = pytest.importorskip("ray")
RAY = Path(sys.executable).parent / "ray"
SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """End a ``ray start --block`` process (it stops the node's own processes as it exits)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for_port(port: int, head: subprocess.Popen, deadline: float) -> None:
    """Until the head's GCS accepts connections (or the head has exited, or the deadline passed)."""
    while time.time() < deadline:
        assert head.poll() is None, "ray start --head exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    raise AssertionError("the Ray head did not start")


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A head and a worker node; the worker's view of ``tmp_path/runs`` is a private, empty tmpfs."""
    if not RAY.is_file() or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("needs Ray's `ray` command and `unshare -m` (a private mount on the worker node)")
    runs = tmp_path / "runs"
    runs.mkdir()
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit in 107 characters
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a cluster of this test alone, on 127.0.0.1: no token
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    head = subprocess.Popen([str(RAY), "start", "--head", f"--port={port}", "--num-cpus=0", "--block",
                             f"--temp-dir={temp / 'head'}", "--include-dashboard=false"], **quiet)
    worker_cmd = (f"mount -t tmpfs tmpfs {runs} && exec {RAY} start --address={address} --num-cpus=2 --block "
                  f"--temp-dir={temp / 'worker'}")
    worker = subprocess.Popen(["unshare", "-m", "sh", "-c", worker_cmd], **quiet)
    try:
        deadline = time.time() + 180
        wait_for_port(port, head, deadline)
        ray.init(address=address, log_to_driver=False)
        while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.time() < deadline:
            assert worker.poll() is None, "the worker's ray start exited"
            time.sleep(1)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2, "the worker node did not join"
        yield address, runs
    finally:
        ray.shutdown()
        stop(worker)
        stop(head)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_folds_trained_on_a_worker_node_arrive_on_the_driver(cluster: tuple[str, Path], tmp_path: Path) -> None:
    address, runs = cluster
    data = datagen.csv_single(tmp_path / "comp")
    run = podium.train(data, overrides=[*datagen.TINY, f"run.root={runs}", "run.name=remote"], ray=address,
                       retries=0)
    assert run.status == "done" and run.folds_done() == [0, 1]
    parts = sorted(runs.glob("remote-part*"))
    assert len(parts) == 2 and all(Run(p).status == "done" for p in parts)  # brought back whole from the worker
    assert all(Run(p).info["pid"] != os.getpid() for p in parts)
    logged = {r["name"] for r in experiment_log(runs)}
    assert {p.name for p in parts} <= logged  # the driver's experiment log lists the parts that came back
    assert (run.path / "submission.csv").is_file()
