import multiprocessing
import os
import platform
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

from podium.config import TrainConfig, from_dict
from podium.core.errors import PodiumError
from podium.engine.accel import (
    inference_accelerator,
    make_accelerator,
    make_loader,
    maybe_compile,
    num_workers,
    quiet_worker,
    resolve_precision,
)


def test_auto_precision_on_cpu_is_fp32_and_bf16_is_a_switch() -> None:
    assert resolve_precision("auto", "cpu") == "no"
    assert resolve_precision("bf16", "cpu") == "bf16" and resolve_precision("no", "cpu") == "no"
    with pytest.raises(PodiumError, match="fp16 needs a GPU"):
        resolve_precision("fp16", "cpu")


def test_workers_from_cores() -> None:
    assert num_workers(3, "cpu") == 3
    cores = os.cpu_count() or 1
    assert num_workers(-1, "cuda") == max(1, min(8, cores - 1))
    assert num_workers(-1, "cpu") == min(1, cores - 1)


def test_loader_settings() -> None:
    ds = torch.utils.data.TensorDataset(torch.zeros(10, 1))
    train = make_loader(ds, 4, 1, "cuda", shuffle_seed=0)
    assert train.pin_memory and train.persistent_workers and train.drop_last and train.prefetch_factor == 4
    plain = make_loader(ds, 4, 0, "cpu")
    assert not plain.pin_memory and not plain.persistent_workers and not plain.drop_last


def _loader_start_method(_: int) -> str:
    # what a process spawned by `sweep --jobs` may default to (measured there, from the CLI): spawn, whose loader
    # workers import torch and podium again for every loader
    multiprocessing.set_start_method("spawn", force=True)
    ds = torch.utils.data.TensorDataset(torch.zeros(4, 1))
    return make_loader(ds, 2, 1, "cpu").multiprocessing_context.get_start_method()


# A loader worker's fd server whose peer (the main process, interrupted while receiving a batch) resets the connection:
# the real `multiprocessing.resource_sharer` thread, reset by a socket that closes with SO_LINGER 0.
LOST_PEER = """
import socket, struct, sys, time, os
from multiprocessing import resource_sharer
if sys.argv[1] == "quiet":
    from podium.engine.accel import quiet_worker
    quiet_worker(0)
resource_sharer.DupFd(os.open(os.devnull, os.O_RDONLY))  # starts the worker's fd server, as sharing a batch does
sock = socket.socket(socket.AF_UNIX)
sock.connect(resource_sharer._resource_sharer._address)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
sock.close()
time.sleep(0.5)
raise ValueError("any other uncaught error still shows")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's fd sharing between loader workers")
def test_loader_workers_do_not_print_the_interrupted_main_process_as_a_traceback() -> None:
    loud, quiet = (subprocess.run([sys.executable, "-c", LOST_PEER, mode], capture_output=True, text=True, timeout=60)
                   for mode in ("loud", "quiet"))
    lost = ("ConnectionResetError", "BrokenPipeError")  # which one depends on where the server was when the peer went
    assert "resource_sharer" in loud.stderr and any(e in loud.stderr for e in lost), loud.stderr  # what CI printed
    assert "resource_sharer" not in quiet.stderr and not any(e in quiet.stderr for e in lost), quiet.stderr
    assert "ValueError: any other uncaught error still shows" in quiet.stderr
    assert make_loader(torch.utils.data.TensorDataset(torch.zeros(4, 1)), 2, 1, "cpu").worker_init_fn is quiet_worker


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is Linux's loader start method")
def test_loader_workers_fork_even_inside_a_spawned_process() -> None:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(_loader_start_method, 0).result() == "fork"


def test_cpu_accelerator_precision() -> None:
    acc = make_accelerator(TrainConfig(device="cpu", precision="auto", threads=1))
    assert acc.mixed_precision == "no"


def test_inference_accelerator_runs_precision_unless_overridden() -> None:
    from accelerate.state import AcceleratorState, GradientState

    assert inference_accelerator("cpu").mixed_precision == "no"  # no run config: auto, fp32 on CPU
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    cfg = from_dict({"train": {"precision": "bf16", "threads": 1}})
    assert inference_accelerator("cpu", cfg, precision="no").mixed_precision == "no"  # the parity check's fp32


def test_compile_is_in_place_and_optional() -> None:
    model = torch.nn.Linear(2, 2)
    maybe_compile(model, TrainConfig())
    assert model._compiled_call_impl is None
    maybe_compile(model, TrainConfig(compile=True))
    assert model._compiled_call_impl is not None
    assert list(model.state_dict()) == ["weight", "bias"]  # checkpoints keep the plain keys


FAULTS = """
import resource, sys, torch
from podium.engine.accel import keep_freed_memory

def faults():
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.ones(8 << 20, dtype=torch.uint8).sum()  # 8 MiB, freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0

faults()
before = faults()
kept = keep_freed_memory()
faults()
print(before, faults(), kept)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_keep_freed_memory_stops_page_faults_on_reallocation() -> None:
    """In a fresh process (the setting is process-wide): with glibc's defaults every large allocation is mapped and
    zero-filled afresh (5 x (8 MiB + the 64 MiB int64 copy .sum() makes) = 81,920 faults); once freed memory is
    kept, reallocating costs none, or now and then one heap growth (14,336 faults seen in 1 of 10 processes)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True, env=env, timeout=120)
    before, after, kept = out.stdout.split()
    assert kept == "True" and int(before) > 5 * 2048 and int(after) < int(before) // 4, out.stdout
