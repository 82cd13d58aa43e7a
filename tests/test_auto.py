"""``podium auto`` for real: the command line's plan table and refusals, the probe's cache, and one end-to-end auto
run on a generated dataset with a ladder of timm's tiny test models (tests/test_auto_plan.py covers the planning on
a fake clock)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import datagen
from podium.core.errors import PodiumError
from podium.engine.timing import StepTiming
from podium.multirun.auto.ladder import LADDERS, Candidate
from podium.multirun.auto.probe import TimingCache
from podium.runs.auto import AutoFolder
from podium.runs.ensemble import open_folder

TINY_LADDER = (Candidate("test_resnet", 32), Candidate("test_efficientnet", 32), Candidate("test_convnext", 48))


@pytest.fixture
def tiny_ladder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The CPU ladder replaced by timm's tiny test models for the test (and the probe's cache under tmp_path)."""
    monkeypatch.setenv("PODIUM_CACHE", str(tmp_path / "cache"))
    saved = LADDERS.unregister("cpu")
    LADDERS.register("cpu")(TINY_LADDER)
    yield TINY_LADDER
    LADDERS.unregister("cpu")
    LADDERS.register("cpu")(saved)


def test_the_cpu_ladder_starts_with_offline_pretrained_backbones_small_to_large() -> None:
    cpu = LADDERS.get("cpu")
    assert cpu[0] == Candidate("tf_efficientnet_lite0", 128)
    assert {c.model for c in cpu} >= {"tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"}
    assert all(128 <= c.size <= 224 for c in cpu) and "gpu" in LADDERS


def test_a_bad_budget_is_one_line_before_anything(cli, single_dir: Path, tmp_path: Path) -> None:
    code, err = cli("auto", str(single_dir), "--budget", "2x", f"run.root={tmp_path / 'runs'}")
    assert code == 2 and err.count("\n") == 1 and "90s, 15m, 2h or 1h30m" in err
    code, err = cli("auto", str(single_dir), f"run.root={tmp_path / 'runs'}")
    assert code == 2 and "--budget" in err
    assert not (tmp_path / "runs").exists()


def test_dry_run_prints_the_plan_and_trains_nothing(cli, tiny_ladder, single_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import podium

    runs = tmp_path / "runs"
    plan = podium.auto(single_dir, "3m", None, [*datagen.TINY, f"run.root={runs}"], dry_run=True)
    out = capsys.readouterr().out
    assert plan["budget_s"] == 180 and plan["runs"] and plan["predicted_end_s"] <= 180
    header = next(line for line in out.splitlines() if line.startswith("run "))
    assert header.split()[:7] == ["run", "model", "size", "epochs", "folds", "pred.", "min"] and "why" in header
    assert "run-1" in out and "of the 3.0 min budget" in out
    assert not runs.exists() or not any(runs.iterdir())  # no run, no auto folder
    code, err = cli("auto", str(single_dir), "--budget", "3m", "--dry-run", *datagen.TINY, f"run.root={runs}")
    assert code == 0 and not err and (not runs.exists() or not any(runs.iterdir()))
    cached = json.loads((tmp_path / "cache" / "auto" / "timings.json").read_text())
    assert any(k.endswith("|test_resnet@32") for k in cached)  # the probe is cached per machine and candidate


def test_a_too_small_budget_is_refused_with_the_smallest_that_works(cli, tiny_ladder, single_dir: Path,
                                                                    tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    code, err = cli("auto", str(single_dir), "--budget", "5s", *datagen.TINY, f"run.root={runs}")
    assert code == 2 and err.count("\n") == 1, err
    assert "too small" in err and "the smallest budget that works is --budget" in err
    assert not runs.exists() or not any(runs.iterdir())


def test_the_probe_cache_answers_a_second_time_without_measuring(tmp_path: Path) -> None:
    cache = TimingCache(tmp_path / "timings.json")
    assert cache.get("k") is None
    cache.put("k", StepTiming(0.01, 0.002, 0.001, 0.3))
    assert TimingCache(tmp_path / "timings.json").get("k") == StepTiming(0.01, 0.002, 0.001, 0.3)
    (tmp_path / "timings.json").write_text("{not json")
    assert TimingCache(tmp_path / "timings.json").get("k") is None  # damaged: measured again


def test_cached_timings_follow_the_machine_speed_now(single_dir: Path, tmp_path: Path) -> None:
    """A cache filled while the machine was busy: the first cached candidate is timed again and the others scaled."""
    from dataclasses import astuple

    import podium
    from podium.data.folders.ingest import load_competition
    from podium.multirun.auto.execute import run_config
    from podium.multirun.auto.plan import Workload
    from podium.multirun.auto.probe import probe_ladder

    base = podium.make_config(None, [*datagen.TINY, f"run.root={tmp_path / 'runs'}"])
    comp = load_competition(single_dir, base.data, check=False)
    cost = {"test_resnet": 0.01, "test_efficientnet": 0.02, "test_convnext": 0.04}
    load = {"factor": 4.0}  # a busy machine: everything 4x slower
    timed: list[str] = []

    def timer(cfg, comp) -> StepTiming:
        timed.append(cfg.model.name)
        c = cost[cfg.model.name] * load["factor"]
        return StepTiming(c, c / 4, 0.001 * load["factor"], 0.1)

    def probe(budget: float = 3600) -> tuple[dict[str, StepTiming], list[str]]:
        clock = type("C", (), {"now": lambda self: 0.0})()
        return probe_ladder(TINY_LADDER, lambda c: run_config(base, c, 2, 2, "p"), comp, Workload(48, 12), budget,
                            clock, 0.0, TimingCache(tmp_path / "timings.json"), timer)

    busy, _ = probe()
    assert timed == ["test_resnet", "test_efficientnet", "test_convnext"]
    load["factor"], timed[:] = 1.0, []
    quiet, notes = probe()
    assert timed == ["test_resnet"]  # only the first is timed again
    assert quiet["test_convnext@48"].train_s == pytest.approx(busy["test_convnext@48"].train_s / 4)
    assert quiet["test_efficientnet@32"].eval_s == pytest.approx(0.005)
    assert any("4.00x the speed of its cached timings" in n for n in notes)
    timed[:] = []
    assert probe()[0] == quiet and timed == ["test_resnet"] and not probe()[1]  # the same speed: no note
    # busy again, on a budget whose ladder stops at the first candidate: the others are rescaled all the same, so a
    # quiet walk up the whole ladder afterwards reads every timing at one speed
    load["factor"] = 4.0
    short, _ = probe(20)
    assert list(short) == ["test_resnet@32"]
    load["factor"] = 1.0
    again, _ = probe()
    assert {k: astuple(t) for k, t in again.items()} == {k: pytest.approx(astuple(t)) for k, t in quiet.items()}


@pytest.mark.slow
def test_auto_end_to_end_on_a_tiny_ladder(tiny_ladder, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import podium

    data = datagen.csv_single(tmp_path / "single")
    budget = 60.0
    t0 = time.monotonic()
    final = podium.auto(data, "60s", None, [*datagen.TINY, f"run.root={tmp_path / 'runs'}"])
    wall = time.monotonic() - t0
    assert final.submission_path.is_file() and final.metrics["cv_score"] is not None
    folder = AutoFolder(next((tmp_path / "runs").glob("auto-single-*")))
    summary, plan = folder.summary, folder.plan
    assert summary["final"] == str(final.path) and folder.submission_path.read_text() == \
        final.submission_path.read_text()
    assert plan["runs"] and {"name", "model", "size", "epochs", "folds", "predicted_s", "why"} <= set(plan["runs"][0])
    trained = [s for s in summary["steps"] if s["kind"] in ("run", "pseudo")]
    assert trained and all(open_folder(s["folder"], writer=False).status == "done" for s in trained)  # none half-done
    assert all(s["actual_s"] > 0 for s in summary["steps"] if s["kind"] != "probe")
    print(f"auto end to end: wall {wall:.1f} s of a {budget:.0f} s budget ({wall / budget:.0%}; "
          f"summary {summary['used']:.0%}), {len(trained)} runs, final {summary['final_kind']}")
    with pytest.raises(PodiumError):
        podium.auto(data, "1s", None, [*datagen.TINY, f"run.root={tmp_path / 'runs'}"])
