from pathlib import Path

import pytest
import torch

from podium.config import PodiumConfig, merge
from podium.core.errors import PodiumError
from podium.models import create_model, resolve_preprocessing
from podium.runs.checkpoint import (
    Checkpoint,
    ResumeState,
    load_checkpoint,
    load_state,
    rng_state,
    save_checkpoint,
    save_state,
    set_rng_state,
)


def _checkpoint() -> tuple[torch.nn.Module, Checkpoint]:
    cfg = merge(PodiumConfig(), ["model.name=test_resnet", "model.img_size=32", "model.pretrained=none"])
    model = create_model(cfg.model, 3).eval()
    prep = resolve_preprocessing(model, cfg.model)
    return model, Checkpoint(model.state_dict(), cfg, ("a", "b", "c"), "multiclass", prep, fold=1, epoch=2,
                             metric="accuracy", score=0.5, decisions={"threshold": 0.4})


def test_round_trip_rebuilds_the_same_model(tmp_path: Path) -> None:
    model, ckpt = _checkpoint()
    assert ckpt.preprocessing.size == 32 and len(ckpt.preprocessing.mean) == 3
    save_checkpoint(tmp_path / "best.pt", ckpt)
    back = load_checkpoint(tmp_path / "best.pt")  # weights_only=True inside
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model(x), back.build_model()(x), atol=1e-6)
    assert back.preprocessing == ckpt.preprocessing and back.config == ckpt.config
    assert back.classes == ("a", "b", "c") and back.decisions == {"threshold": 0.4}
    assert (back.fold, back.epoch, back.metric, back.score) == (1, 2, "accuracy", 0.5)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file


def test_version_1_checkpoints_still_load(tmp_path: Path) -> None:
    _, ckpt = _checkpoint()
    from podium.config import to_dict

    torch.save({"format": "podium-checkpoint-1", "state_dict": ckpt.state_dict, "config": to_dict(ckpt.config),
                "classes": ["a", "b", "c"], "task": "multilabel", "preprocessing": ckpt.preprocessing.to_dict(),
                "threshold": 0.3}, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").decisions == {"threshold": 0.3}


def test_bad_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(PodiumError, match="No podium checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "half.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(PodiumError, match="cannot be read"):
        load_checkpoint(tmp_path / "half.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(PodiumError, match="it is empty"):
        load_checkpoint(tmp_path / "empty.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(PodiumError, match="not a podium checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


class Hostile:
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_checkpoint_that_would_run_code_is_refused_in_one_line(tmp_path: Path) -> None:
    torch.save({"format": "podium-resume-2", "x": Hostile()}, tmp_path / "last.pt")
    with pytest.raises(PodiumError, match="cannot be read as a podium resume state.*unsafe"):
        load_state(tmp_path / "last.pt")


def test_resume_state_round_trip_restores_every_generator(tmp_path: Path) -> None:
    import random

    import numpy as np

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    saved = rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    state = ResumeState(2, 0.9, 1, [{"epoch": 1, "best": True}], {"w": torch.ones(2)}, {"state": {}}, {"last_epoch": 4},
                        rng=saved)
    save_state(tmp_path / "last.pt", state)
    torch.rand(5), np.random.rand(5), random.random()  # move every generator on
    back = load_state(tmp_path / "last.pt")
    set_rng_state(back.rng)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]
    assert back.epoch == 2 and back.rows == [{"epoch": 1, "best": True}] and torch.equal(back.model["w"], torch.ones(2))


def test_unknown_model_name() -> None:
    cfg = merge(PodiumConfig(), ["model.name=resnet_nonexistent"])
    with pytest.raises(PodiumError, match="Unknown timm model"):
        create_model(cfg.model, 2)
