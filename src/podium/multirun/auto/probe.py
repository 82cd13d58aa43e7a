"""The probe of ``podium auto``: a few real training and evaluation steps of each candidate of the ladder, on this
machine and device, on images of this data (``podium.engine.timing``), cached per machine, device and candidate in
podium's cache folder so that a second ``auto`` on the same machine spends nothing on it.

Its cost counts against the budget: candidates are timed from the smallest up, and the probe stops at the first one
whose shortest honest run alone would not fit, or once it has used ``PROBE_SHARE`` of the budget.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from podium.config import PodiumConfig
from podium.core.cachedir import cache_dir
from podium.core.errors import PodiumError
from podium.core.io import write_json
from podium.data.folders.ingest import Competition
from podium.engine.accel import resolve_device, resolve_precision
from podium.engine.timing import StepTiming, time_steps
from podium.multirun.auto.clock import Clock
from podium.multirun.auto.ladder import Candidate
from podium.multirun.auto.plan import MIN_EPOCHS, Workload, run_cost, usable_s

PROBE_SHARE = 0.15  # the most of the budget the probe spends on uncached candidates
PROBE_IMAGES = 64  # images the probe decodes per candidate (repeated when the data has fewer)

# (config of the candidate, competition) -> its timing; podium.engine.timing.time_steps by default, a script in tests
Timer = Callable[[PodiumConfig, Competition], StepTiming]
# (config of the candidate, candidate, model outputs) -> the timing's cache key: machine_key, or the training node's
KeyOf = Callable[[PodiumConfig, Candidate, int], str]


def measure(cfg: PodiumConfig, comp: Competition) -> StepTiming:
    """Time the candidate ``cfg`` names on the first images of ``comp`` (spread over its classes by a fixed shuffle)."""
    rows = np.random.default_rng(0).permutation(len(comp.train))[:PROBE_IMAGES]
    paths = comp.train["path"].to_numpy()[rows].tolist()
    return time_steps(cfg, paths, comp.targets[rows], comp.task, len(comp.classes))


def machine_key(cfg: PodiumConfig, candidate: Candidate, outputs: int) -> str:
    """What a timing depends on: this machine, its device and precision, torch, the batch and the candidate."""
    tc = cfg.train
    device = resolve_device(tc.device)
    gpu = torch.cuda.get_device_name() if device == "cuda" else ""
    parts = (platform.node(), platform.machine(), os.cpu_count(), gpu, torch.__version__, device,
             resolve_precision(tc.precision, device), tc.threads, tc.batch_size, tc.channels_last, tc.optimizer,
             outputs, candidate.name)
    return "|".join(map(str, parts))


class TimingCache:
    """Timings kept as one JSON file in podium's cache folder (``auto/timings.json``), keyed by ``machine_key``."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir("auto") / "timings.json"
        try:
            self.saved = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
        except (OSError, ValueError):  # a damaged cache is measured again
            self.saved = {}

    def get(self, key: str) -> StepTiming | None:
        """The saved timing under ``key``, or None."""
        raw = self.saved.get(key)
        return StepTiming(**raw) if isinstance(raw, dict) else None

    def rescale(self, prefix: str, factor: float, skip: set[str] = frozenset()) -> None:
        """Every saved timing whose key starts with ``prefix`` (but those in ``skip``) times ``factor``, saved."""
        if factor == 1.0:
            return
        for key, raw in list(self.saved.items()):
            if key.startswith(prefix) and key not in skip and isinstance(raw, dict):
                self.saved[key] = dataclasses.asdict(StepTiming(**raw).scaled(factor))
        write_json(self.path, self.saved)

    def put(self, key: str, timing: StepTiming) -> None:
        """Save ``timing`` under ``key`` (the whole file rewritten atomically)."""
        self.saved[key] = dataclasses.asdict(timing)
        write_json(self.path, self.saved)


def probe_ladder(ladder: tuple[Candidate, ...], config_of: Callable[[Candidate], PodiumConfig], comp: Competition,
                 w: Workload, budget_s: float, clock: Clock, start: float, cache: TimingCache,
                 timer: Timer = measure, key_of: KeyOf | None = None) -> tuple[dict[str, StepTiming], list[str]]:
    """Timings of the ladder's candidates from the smallest up, and notes on those skipped. ``key_of``: the cache
    key of a timing (default ``machine_key``, this machine; ``auto --ray``: the node that times it).

    The first cached candidate met is timed again, and every cached timing of this machine (the same key but for the
    candidate) is rescaled by how much faster or slower it runs now, in the file too: a cache filled while the
    machine was busy (or idle) would otherwise plan every later budget wrong. All of them, not only those this walk
    reaches: rescaling only those once left two speeds in one file, and a 5-minute budget then planned 8 epochs of
    Lite2 at 224 px from a timing 5x too fast."""
    timings: dict[str, StepTiming] = {}
    notes: list[str] = []
    probe_start, checked, fresh = clock.now(), False, set()
    for candidate in ladder:
        cfg = config_of(candidate)
        key = (key_of or machine_key)(cfg, candidate, comp.task.outputs(len(comp.classes)))
        cached = cache.get(key)
        if cached is not None and checked:
            timing = cached
        else:
            if cached is None and clock.now() - probe_start > PROBE_SHARE * budget_s:
                notes.append(f"{candidate.name} not probed: the probe has used {PROBE_SHARE:.0%} of the budget")
                break
            try:
                timing = timer(cfg, comp)
            except PodiumError as e:  # no weights on this machine, a size the model refuses
                notes.append(f"{candidate.name} skipped: {e}")
                continue
            if cached is not None:  # the first cached candidate: how fast this machine runs now
                cache.rescale(family(key), recalibrate(cached, timing, notes), skip=fresh)
                checked = True
            cache.put(key, timing)
            fresh.add(key)
        timings[candidate.name] = timing
        if run_cost(timing, w, 2).total(MIN_EPOCHS) > usable_s(budget_s, clock.now() - start, 1):
            notes.append(f"the ladder stops at {candidate.name}: its shortest run alone would not fit the budget")
            break
    return timings, notes


def family(key: str) -> str:
    """The part of a ``machine_key`` that is not the candidate: the timings of one machine, device and setup."""
    return key.rsplit("|", 1)[0] + "|"


def recalibrate(cached: StepTiming, fresh: StepTiming, notes: list[str]) -> float:
    """Now / then seconds per image of one candidate timed again (the factor for the other cached timings); a change
    of more than a quarter is noted."""
    before, now = cached.train_s + cached.eval_s, fresh.train_s + fresh.eval_s
    speed = now / before if before > 0 else 1.0
    if abs(speed - 1.0) > 0.25:
        notes.append(f"this machine runs at {1 / speed:.2f}x the speed of its cached timings (another load?): "
                     f"the other cached candidates are scaled by {speed:.2f}")
    return speed
