import pytest
from typer.testing import CliRunner

from podium.cli import app
from podium.config import PodiumConfig, load_config, merge, to_dict
from podium.core.errors import PodiumError
from podium.engine.probe import largest_batch, probe, resolve_auto_batch, split_batch


@pytest.mark.parametrize("limit_fit", [1, 2, 3, 17, 64, 100, 511])
def test_largest_batch_finds_the_boundary(limit_fit: int) -> None:
    tried = []

    def fits(b: int) -> bool:
        tried.append(b)
        return b <= limit_fit

    found = largest_batch(fits, start=2, limit=4096)
    assert found == (0 if limit_fit < 2 else limit_fit)
    assert len(tried) <= 2 * 12 + 1  # doubling then bisection, not a linear scan


def test_largest_batch_stops_at_the_limit() -> None:
    assert largest_batch(lambda b: True, limit=100) == 100


@pytest.mark.parametrize(("effective", "largest", "expected"), [
    (32, 512, (32, 1)), (32, 32, (32, 1)), (32, 20, (16, 2)), (32, 9, (8, 4)), (30, 7, (6, 5)), (32, 1, (1, 32)),
])
def test_split_batch_keeps_the_effective_batch(effective: int, largest: int, expected: tuple[int, int]) -> None:
    batch, accum = split_batch(effective, largest)
    assert (batch, accum) == expected
    assert batch <= largest and batch * accum == effective


def test_batch_size_auto_in_config() -> None:
    cfg = load_config(None, ["train.batch_size=auto", "train.effective_batch=64"])
    assert cfg.train.batch_size == 0
    assert merge(PodiumConfig(), ["train.batch_size=48"]).train.batch_size == 48
    assert to_dict(cfg)["train"]["batch_size"] == 0
    with pytest.raises(PodiumError, match="train.batch_size must be int"):
        load_config(None, ["train.batch_size=big"])
    with pytest.raises(PodiumError, match="train.epochs must be int"):
        load_config(None, ["train.epochs=auto"])  # only fields that declare the word accept it


def test_auto_batch_on_cpu_keeps_the_configured_effective_batch() -> None:
    cfg = load_config(None, ["model.name=test_resnet", "model.img_size=32", "train.device=cpu",
                             "train.batch_size=auto", "train.effective_batch=24"])
    resolved, note = resolve_auto_batch(cfg, 3)
    assert (resolved.train.batch_size, resolved.train.accum_steps) == (24, 1)
    assert "nothing is probed on cpu" in note
    same, none = resolve_auto_batch(resolved, 3)
    assert same is resolved and none == ""


def test_probe_on_cpu_probes_nothing() -> None:
    cfg = load_config(None, ["model.name=test_resnet", "train.device=cpu"])
    r = probe(cfg.model, cfg.train)
    assert r.batch_size is None and r.device == "cpu" and "CUDA" in r.reason


def test_cli_probe_on_cpu() -> None:
    result = CliRunner().invoke(app, ["probe", "--model", "test_resnet", "--size", "32", "train.device=cpu"])
    assert result.exit_code == 0, result.output
    assert "nothing is probed on cpu" in result.output
