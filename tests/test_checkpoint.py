from pathlib import Path

import pytest
import torch

from podium.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from podium.config import PodiumConfig, merge
from podium.errors import PodiumError
from podium.models import create_model, resolve_preprocessing


def test_round_trip_rebuilds_the_same_model(tmp_path: Path) -> None:
    cfg = merge(PodiumConfig(), ["model.name=test_resnet", "model.img_size=32", "model.pretrained=none"])
    model = create_model(cfg.model, 3).eval()
    prep = resolve_preprocessing(model, cfg.model)
    assert prep.size == 32 and len(prep.mean) == 3
    path = save_checkpoint(tmp_path / "best.pt", model.state_dict(), cfg, ["a", "b", "c"], "multiclass", prep,
                           fold=0, threshold=0.4)
    ckpt = load_checkpoint(path)  # weights_only=True inside
    rebuilt, prep2, cfg2 = model_from_checkpoint(ckpt)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model(x), rebuilt(x), atol=1e-6)
    assert prep2 == prep and cfg2 == cfg and ckpt["classes"] == ["a", "b", "c"] and ckpt["threshold"] == 0.4
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file


def test_bad_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(PodiumError, match="No checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "half.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(PodiumError, match="cannot be read"):
        load_checkpoint(tmp_path / "half.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(PodiumError, match="not a podium checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_unknown_model_name() -> None:
    cfg = merge(PodiumConfig(), ["model.name=resnet_nonexistent"])
    with pytest.raises(PodiumError, match="Unknown timm model"):
        create_model(cfg.model, 2)
