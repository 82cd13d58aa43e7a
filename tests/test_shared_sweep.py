"""``podium sweep --storage``: two processes share one grid through an SQLite Optuna storage; each combination runs
once, a failed one is retried, and the table is read from the storage."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest

import podium
from podium.config import PodiumConfig, merge
from podium.core.errors import PodiumError
from podium.multirun.shared_sweep import claim, open_grid
from podium.multirun.sweep import plan_sweep

SRC = str(Path(__file__).resolve().parents[1] / "src")
GRID = ["--grid", "model.name=no_such_net,test_resnet", "--grid", "train.lr=0.001,0.002"]


def test_two_processes_share_one_grid(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PODIUM_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "podium", "sweep", str(single_dir), *GRID, "--storage", url, "--name", "shared",
            "--retries", "1", *tiny]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
    study = optuna.load_study(study_name="sweep-shared", storage=url)
    by_combo: dict[int, list] = {}
    for t in study.trials:
        by_combo.setdefault(t.user_attrs["combo"], []).append(t)
    assert sorted(by_combo) == [0, 1, 2, 3]
    states = {i: [t.state.name for t in ts] for i, ts in by_combo.items()}
    assert states[0] == states[1] == ["FAIL", "FAIL"]  # no_such_net: tried, retried once, then left failed
    assert states[2] == states[3] == ["COMPLETE"]  # each real combination trained exactly once
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file())
    assert len(runs) == 2 and {r.rsplit("-", 2)[0] for r in runs} == {"shared-test_resnet-0.001",
                                                                      "shared-test_resnet-0.002"}
    table = pd.read_csv(tmp_path / "runs" / "sweeps" / "shared" / "sweep.csv")
    assert table["status"].tolist() == ["failed", "failed", "done", "done"]
    assert table["attempts"].tolist() == [2, 2, 1, 1]
    assert table["cv_score"].iloc[2:].between(0, 1).all() and "no_such_net" in table["reason"].iloc[0]

    # Run again in this process: finished combinations stay finished, the failed ones are queued once more
    again = podium.sweep(single_dir, GRID[1::2], overrides=tiny, name="shared", storage=url, retries=0)
    assert again["status"].tolist() == ["failed", "failed", "done", "done"]
    assert again["attempts"].tolist() == [3, 3, 1, 1]
    assert again["run"].iloc[2:].tolist() == table["run"].iloc[2:].tolist()
    assert len([p for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]) == 2


def test_another_grid_under_the_same_name_is_refused(single_dir: Path, tiny: tuple[str, ...],
                                                     tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    base = merge(PodiumConfig(), list(tiny))
    first = plan_sweep(single_dir, base, ["model.name=no_such_net,test_resnet"], "g")
    study = open_grid(optuna, url, first)  # created: one waiting trial per combination
    assert [t.state.name for t in study.trials] == ["WAITING", "WAITING"]
    assert open_grid(optuna, url, first).user_attrs["grid"] == [c.name for c in first.combos]  # loaded, not doubled
    assert len(study.trials) == 2
    claimed = claim(optuna, study)  # a worker of this machine takes combination 0, then dies
    assert claimed.number == 0 and claim(optuna, study).number == 1 and claim(optuna, study) is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claimed.set_user_attr("pid", dead.pid)
    again = open_grid(optuna, url, first)  # the dead claim is failed and queued again; the live one is left alone
    assert [t.state.name for t in again.trials] == ["FAIL", "RUNNING", "WAITING"]
    assert again.trials[2].user_attrs == {"combo": 0, "attempt": 2}
    other = plan_sweep(single_dir, base, ["model.name=test_resnet,no_such_net"], "g")
    with pytest.raises(PodiumError, match="another grid"):
        open_grid(optuna, url, other)
    with pytest.raises(PodiumError, match="--storage"):
        podium.sweep(single_dir, ["model.name=test_resnet"], overrides=tiny, name="g", storage="nosuchdb://x")


def test_a_sweep_storage_the_user_cannot_lock_is_one_line(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path,
                                                          cli, monkeypatch: pytest.MonkeyPatch) -> None:
    class Denied:  # a lock file in a folder the user cannot write (tests run as root: chmod denies nothing)
        def __init__(self, path: str) -> None:
            self.path = path

        def acquire(self) -> None:
            raise PermissionError(13, "Permission denied", self.path)

    monkeypatch.setattr("podium.multirun.search.FileLock", Denied)
    code, err = cli("sweep", str(single_dir), "--grid", "train.lr=0.001,0.01", "--storage",
                    f"sqlite:///{tmp_path / 'locked' / 'grid.db'}", *tiny)
    assert code == 2 and "Cannot lock the study storage" in err and "Permission denied" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not list((tmp_path / "runs").glob("*/run.json"))  # no run trained


def test_no_private_optuna_attribute_in_the_code() -> None:
    """The grid is shared through Optuna's public API only (ask, tell, enqueue_trial, user attributes): a private
    attribute such as ``study._storage`` changes without notice between Optuna releases."""
    src = Path(SRC) / "podium"
    private = re.compile(r"\._(storage|study_id|trial_id|cached_frozen_trial)\b|optuna\.[a-z_.]*\._[a-z]")
    found = [f"{p.relative_to(src)}:{n}" for p in sorted(src.rglob("*.py"))
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if private.search(line)]
    assert not found, found
