"""Shared fixtures: generated competition folders and the tiny training settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import datagen

torch.set_num_threads(1)
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each test starts like a new process: Accelerate fixes device and precision once per process (podium itself
    never resets that; a test of a second run in one process does so without this reset in between)."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture
def single_dir(tmp_path: Path) -> Path:
    return datagen.csv_single(tmp_path / "single")


@pytest.fixture
def multilabel_dir(tmp_path: Path) -> Path:
    return datagen.csv_multilabel(tmp_path / "multi")


@pytest.fixture
def onehot_dir(tmp_path: Path) -> Path:
    return datagen.csv_multilabel(tmp_path / "onehot", onehot=True)


@pytest.fixture
def folders_dir(tmp_path: Path) -> Path:
    return datagen.folders(tmp_path / "folders", test=5)


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[str, ...]:
    """Overrides for a seconds-long run: timm's test_resnet at 32 px, 2 folds, 1 epoch, runs under tmp_path."""
    return (*datagen.TINY, f"run.root={tmp_path / 'runs'}")


def shared_dataset(name: str) -> Path:
    """A dataset from ../shared/datasets, or skip the test when it is not there."""
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """Run the command line in this process: ``cli("sweep", ...)`` -> (exit status, stderr)."""
    import sys

    from podium.cli import main

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["podium", *args])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        return code, capsys.readouterr().err

    return run
