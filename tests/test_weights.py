from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from podium.config import PodiumConfig, merge
from podium.core.errors import PodiumError
from podium.models import packaged, weights
from podium.models.factory import create_model, resolve_preprocessing


def model_cfg(*overrides: str):
    return merge(PodiumConfig(), overrides).model


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No hub, an empty Hugging Face cache and an empty podium cache under tmp_path."""
    monkeypatch.setattr(weights, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(weights, "hub_cached", lambda arch: None)
    monkeypatch.setattr(weights, "hub_cache_tags", lambda: set())
    monkeypatch.setenv("PODIUM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "weights"


def need_packaged(arch: str = "tf_efficientnet_lite0") -> None:
    if weights.packaged_file(arch) is None:
        pytest.skip(f"the offline extra for {arch} is not installed")


def imagenet_top5(model: torch.nn.Module, rgb: np.ndarray) -> list[int]:
    """Top-5 ImageNet classes of an RGB photo, preprocessed with the model's own pretrained_cfg."""
    prep = resolve_preprocessing(model, model_cfg())
    img = cv2.resize(rgb, (prep.size, prep.size), interpolation=cv2.INTER_AREA)
    x = prep.normalize(torch.from_numpy(img).permute(2, 0, 1)[None].contiguous(), channels_last=False)
    with torch.no_grad():
        return model.eval()(x)[0].topk(5).indices.tolist()


def test_packaged_lite0_mapping_is_checked_and_classifies_imagenet_photos() -> None:
    need_packaged()
    from skimage import data

    source = torch.load(weights.packaged_file("tf_efficientnet_lite0"), map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0").state_dict()
    assert len(source) == len(target)
    assert [tuple(v.shape) for v in source.values()] == [tuple(v.shape) for v in target.values()]
    model = create_model(model_cfg("model.pretrained=packaged"), 1000)
    cat = imagenet_top5(model, data.chelsea())
    coffee = imagenet_top5(model, data.coffee())
    assert 281 <= cat[0] <= 285, cat  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee[0] == 967, coffee  # espresso


@pytest.mark.parametrize("arch", ["tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_packaged_lite1_lite2_load_with_a_new_head(arch: str) -> None:
    need_packaged(arch)
    model = create_model(model_cfg(f"model.name={arch}", "model.pretrained=packaged"), 4)
    assert model.get_classifier().weight.shape[0] == 4


def test_packaged_head_is_replaced_and_backbone_kept() -> None:
    need_packaged()
    full = create_model(model_cfg("model.pretrained=packaged"), 1000).state_dict()
    small = create_model(model_cfg("model.pretrained=packaged", "model.head=catavgmax"), 3).state_dict()
    assert small["classifier.weight"].shape == (3, 2560)
    assert float(small["classifier.weight"].std()) < 0.05  # a fresh, small head: no confident random logits
    assert torch.equal(small["conv_stem.weight"], full["conv_stem.weight"])
    assert torch.equal(small["bn2.running_var"], full["bn2.running_var"])


def test_map_in_order_rejects_mismatches() -> None:
    target = {"a.weight": torch.zeros(2, 3), "classifier.weight": torch.zeros(5, 3)}
    with pytest.raises(PodiumError, match="hold 1 tensors"):
        packaged.map_in_order({"x": torch.zeros(2, 3)}, target, "arch")
    with pytest.raises(PodiumError, match="shape"):
        packaged.map_in_order({"x": torch.zeros(3, 3), "y": torch.zeros(5, 3)}, target, "arch")
    out = packaged.map_in_order({"x": torch.ones(2, 3), "y": torch.ones(10, 3)}, target, "arch")
    assert torch.equal(out["a.weight"], torch.ones(2, 3)) and torch.equal(out["classifier.weight"], torch.zeros(5, 3))


def test_auto_without_weights_stops_with_a_clear_message(offline: Path) -> None:
    with pytest.raises(PodiumError) as err:
        create_model(model_cfg("model.name=test_resnet"), 3)
    msg = str(err.value)
    assert "No pretrained weights for test_resnet" in msg and "model.pretrained=none" in msg
    assert "Available offline here:" in msg
    if weights.packaged_file("tf_efficientnet_lite0"):
        assert "tf_efficientnet_lite0" in msg


def test_auto_prefers_cache_then_packaged(offline: Path) -> None:
    offline.mkdir(parents=True, exist_ok=True)
    src = timm.create_model("test_resnet", num_classes=7)
    save_file(src.state_dict(), str(offline / "test_resnet.safetensors"))
    assert weights.weight_origin("test_resnet").startswith("cache")
    model = create_model(model_cfg("model.name=test_resnet"), 3)
    assert torch.equal(model.state_dict()["conv1.0.weight"], src.state_dict()["conv1.0.weight"])
    assert model.get_classifier().weight.shape[0] == 3
    if weights.packaged_file("tf_efficientnet_lite0"):
        assert weights.weight_origin("tf_efficientnet_lite0").startswith("packaged")
        assert "tf_efficientnet_lite0" in weights.offline_architectures()


def test_file_source_folder_and_errors(tmp_path: Path) -> None:
    src = timm.create_model("test_resnet", num_classes=5)
    folder = tmp_path / "kaggle-dataset"
    folder.mkdir()
    torch.save(src.state_dict(), folder / "w.pth")
    cfg = model_cfg("model.name=test_resnet", "model.pretrained=file", f"model.weights_path={folder}")
    model = create_model(cfg, 2)
    assert torch.equal(model.state_dict()["conv1.0.weight"], src.state_dict()["conv1.0.weight"])
    torch.save(src.state_dict(), folder / "other.pth")
    with pytest.raises(PodiumError, match="several weights files"):
        create_model(cfg, 2)
    with pytest.raises(PodiumError, match="does not fit"):
        create_model(model_cfg("model.name=resnet18", "model.pretrained=file",
                               f"model.weights_path={folder / 'w.pth'}"), 2)


def test_packaged_for_an_unpackaged_architecture_says_which_exist() -> None:
    with pytest.raises(PodiumError, match="packaged weights exist for tf_efficientnet_lite0"):
        create_model(model_cfg("model.name=test_resnet", "model.pretrained=packaged"), 2)


def test_train_stops_before_training_without_weights(offline: Path, single_dir: Path, tiny: tuple[str, ...],
                                                     tmp_path: Path) -> None:
    from podium.pipeline import train

    cfg = merge(PodiumConfig(), (*tiny, "model.pretrained=auto", "finetune.freeze_epochs=0"))
    with pytest.raises(PodiumError, match="No pretrained weights for test_resnet"):
        train(single_dir, cfg)
    assert not list((tmp_path / "runs").rglob("log.csv"))  # no epoch ran


def test_models_catalog(offline: Path) -> None:
    from podium.models.catalog import weight_catalog

    rows = {r["arch"]: r for r in weight_catalog("*efficientnet_lite*")}
    assert rows["tf_efficientnet_lite0"]["mean"] == (0.5, 0.5, 0.5)
    assert rows["tf_efficientnet_lite0"]["input_size"] == 224
    assert rows["efficientnet_lite0"]["source"] == "none"
    if weights.packaged_file("tf_efficientnet_lite0"):
        assert rows["tf_efficientnet_lite0"]["source"].startswith("packaged")
        offline_rows = weight_catalog("*lite*", offline_only=True)
        assert {r["arch"] for r in offline_rows} >= {"tf_efficientnet_lite0"}
        assert all(r["source"] != "none" for r in offline_rows)


def test_missing_weights_stop_before_a_run_folder_exists(single_dir, tiny, tmp_path, monkeypatch) -> None:
    from podium.pipeline import train

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline, whatever the machine running the tests can reach
    cfg = merge(PodiumConfig(), [*tiny, "model.name=convnext_atto", "model.pretrained=auto",
                                 "finetune.freeze_epochs=0"])
    with pytest.raises(PodiumError, match="No pretrained weights for convnext_atto on this machine.*Available offline"):
        train(single_dir, cfg)
    with pytest.raises(PodiumError, match="model.pretrained=file needs model.weights_path"):
        train(single_dir, merge(cfg, ["model.pretrained=file"]))
    assert not (tmp_path / "runs").exists()


def test_catalog_asks_the_sources_in_auto_order(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from podium.models.catalog import weight_catalog

    def source(arch: str):
        return {r["arch"]: r["source"] for r in weight_catalog("*efficientnet_lite*")}[arch]

    assert source("efficientnet_lite0") == "none"
    cache_src, hub_src = weights.WEIGHT_SOURCES.get("cache"), weights.WEIGHT_SOURCES.get("hub")
    monkeypatch.setattr(cache_src, "catalog", lambda archs, offline=False: {a: "cache" for a in archs
                                                                            if a == "efficientnet_lite0"})
    assert source("efficientnet_lite0") == "cache" and cache_src.origin("efficientnet_lite0") == "cache"
    monkeypatch.setattr(hub_src, "catalog", lambda archs, offline=False: {a: "hub (cached)" for a in archs})
    assert source("efficientnet_lite0") == "hub (cached)"  # hub comes before the cache in AUTO_ORDER
    found = weights.weight_origins(["efficientnet_lite0", "efficientnet_lite1"], order=("cache", "hub"))
    assert found == {"efficientnet_lite0": "cache", "efficientnet_lite1": "hub (cached)"}


def test_catalog_cache_origin_and_offline_rows(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from podium.models.catalog import weight_catalog

    offline.mkdir(parents=True, exist_ok=True)
    (offline / "resnet18.safetensors").write_bytes(b"")
    assert weights.WEIGHT_SOURCES.get("cache").origin("resnet18") == "cache"
    assert weights.WEIGHT_SOURCES.get("hub").origin("resnet18") is None  # offline fixture: no hub
    monkeypatch.setattr(weights, "hub_reachable", lambda timeout=3.0: True)
    assert weights.WEIGHT_SOURCES.get("hub").origin("resnet18") == "hub"
    assert weights.WEIGHT_SOURCES.get("hub").origin("resnet18", offline=True) is None
    rows = {r["arch"]: r["source"] for r in weight_catalog("resnet1*")}
    assert rows["resnet18"] == "hub"
    # usable without the hub: the cached file, even while the hub answers
    assert {r["arch"]: r["source"] for r in weight_catalog("resnet1*", offline_only=True)} == {"resnet18": "cache"}


def test_sources_own_their_checks_and_pretrained_flag(offline: Path) -> None:
    assert not weights.WEIGHT_SOURCES.get("none").pretrained and weights.WEIGHT_SOURCES.get("hub").pretrained
    with pytest.raises(PodiumError, match="needs model.weights_path"):
        weights.WEIGHT_SOURCES.get("file").check(model_cfg("model.pretrained=file"))
    with pytest.raises(PodiumError, match="No pretrained weights for test_resnet"):
        weights.check_weights(model_cfg("model.name=test_resnet", "model.pretrained=auto"))
    weights.check_weights(model_cfg("model.name=test_resnet", "model.pretrained=none"))
    assert weights.WEIGHT_SOURCES.get("auto").probe("test_resnet", model_cfg()) is None
