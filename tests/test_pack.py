"""``podium pack``: the base environment and the dependency walk, slimmed (and fp16) checkpoints, and the pack run as
Kaggle runs it: a fresh virtual environment installs podium only from the pack (``--no-index``; the heavy packages
come from this environment), the pack and data folders are read-only and a hidden test set is swapped in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

import datagen
import podium
from podium.core.errors import PodiumError
from podium.deploy.pack import missing_dependencies, read_base


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny runs, their ensemble, a hidden test set, and a pack of the ensemble and the first run whose base is
    this environment (so it holds podium's wheel only)."""
    from accelerate.state import AcceleratorState, GradientState

    tmp = tmp_path_factory.mktemp("pack")
    data = datagen.csv_single(tmp / "comp")
    base = (*datagen.TINY, f"run.root={tmp / 'runs'}")
    out = {"tmp": tmp, "data": data, "hidden": datagen.hidden_test_set(data, tmp / "hidden", n=30)}
    out["a"] = podium.train(data, overrides=[*base, "run.name=a"]).path
    out["b"] = podium.train(data, overrides=[*base, "run.name=b", "model.resize=crop"]).path
    out["ens"] = podium.ensemble(out["a"], out["b"], blend="weights", name="ens").path
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    freeze = tmp / "freeze.txt"  # this environment, as `pip freeze` writes it, less podium itself
    freeze.write_text("\n".join(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                                if d.metadata["Name"] and d.metadata["Name"].lower() != "podium"))
    out["freeze"] = freeze
    podium.pack(out["ens"], out["a"], out=tmp / "pack", base=freeze)
    out["pack"] = tmp / "pack"
    return out


def test_base_files_and_the_dependency_walk(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("# Kaggle\nnumpy==1.26.4\n-e git+https://x/y.git#egg=y\nTorch>=2.0 ; python_version>'3'\n"
                   "scikit_learn @ file:///tmp/sk.whl\n\npandas\n")
    assert read_base(req) == {"numpy", "torch", "scikit-learn", "pandas"}
    missing = missing_dependencies(read_base(None))  # Kaggle's image: timm and the like are packed, torch is not
    assert {"timm", "albumentations", "accelerate"} <= set(missing)
    assert not {"torch", "numpy", "pandas", "podium"} & set(missing)
    assert not [n for n in missing if n.startswith("nvidia")]  # torch's own dependencies are the base's
    with pytest.raises(PodiumError, match="does not exist"):
        read_base(tmp_path / "nowhere.txt")


def test_pack_layout_and_slimmed_models(packed: dict[str, Path], tmp_path: Path) -> None:
    pack = packed["pack"]
    info = json.loads((pack / "pack.json").read_text())
    assert info["models"] == [packed["ens"].name, packed["a"].name] and info["dependency_wheels"] == {}
    assert [p.name for p in (pack / "wheels").iterdir()] == [info["wheel"]]
    assert {p.name for p in (pack / "models").iterdir()} == {packed[k].name for k in ("ens", "a", "b")}
    run = pack / "models" / packed["a"].name
    files = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    assert files == {"run.json", "config.yaml", "decisions.json", "metrics.json", "fold0/best.pt", "fold0/done.json",
                     "fold1/best.pt", "fold1/done.json"}
    assert (pack / "predict.py").is_file() and "--no-index" in (pack / "notebook_cell.py").read_text()
    half = podium.pack(packed["a"], out=tmp_path / "half", base=packed["freeze"], fp16=True)
    ckpt = podium.load(tmp_path / "half" / "models" / packed["a"].name).load_best(0)
    assert half["fp16"] and all(v.dtype != __import__("torch").float32 for v in ckpt.state_dict.values())
    full = (run / "fold0" / "best.pt").stat().st_size
    assert (tmp_path / "half" / "models" / packed["a"].name / "fold0" / "best.pt").stat().st_size < 0.7 * full
    sub = podium.predict(tmp_path / "half" / "models" / packed["a"].name, data=packed["data"], out=tmp_path / "s.csv")
    assert len(sub) == 12
    with pytest.raises(PodiumError, match="already exists"):
        podium.pack(packed["a"], out=tmp_path / "half", base=packed["freeze"])


def test_cli_pack_refuses_a_missing_folder(tmp_path: Path, cli) -> None:
    code, err = cli("pack", str(tmp_path / "nowhere"), "--out", str(tmp_path / "pack"))
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pack").exists()


def test_pack_refuses_what_cannot_predict_before_any_work(packed: dict[str, Path], tmp_path: Path, cli) -> None:
    half = datagen.unfinished(packed["a"], tmp_path / "half")  # best.pt is there, as an interrupted run leaves it
    code, err = cli("pack", str(half), "--out", str(tmp_path / "p1"), "--base", str(packed["freeze"]))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "has no finished fold to pack" in err and f"podium resume {half}" in err
    alone = tmp_path / "alone" / packed["ens"].name  # an ensemble copied without its member runs
    shutil.copytree(packed["ens"], alone)
    members = json.loads((alone / "members.json").read_text())
    for m in members["members"]:
        m["run_dir"] = str(tmp_path / "gone" / m["name"])
    (alone / "members.json").write_text(json.dumps(members))
    code, err = cli("pack", str(alone), "--out", str(tmp_path / "p2"), "--base", str(packed["freeze"]))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "lacks member run(s)" in err
    binary = tmp_path / "base.whl"
    binary.write_bytes(bytes(range(256)) * 4)
    code, err = cli("pack", str(packed["a"]), "--out", str(tmp_path / "p3"), "--base", str(binary))
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"{binary} is not a text file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alone", "base.whl", "half"]  # no pack, no .partial


def fresh_venv(where: Path) -> Path:
    """A virtual environment without podium whose other packages (torch, timm, ...) are this environment's, linked
    in one by one: the notebook's base image. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "podium" not in entry.name.lower() and not (site / entry.name).exists():
            (site / entry.name).symlink_to(entry)
    return python


def test_pack_installs_offline_and_predicts_a_hidden_test_set(packed: dict[str, Path], tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PODIUM_CACHE")}
    working = tmp_path / "working"  # /kaggle/working
    working.mkdir()
    pack, hidden = packed["pack"], packed["hidden"]
    with datagen.read_only(pack, hidden):
        subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--find-links", str(pack / "wheels"),
                        "podium", "--disable-pip-version-check", "-q"], check=True, env=env, cwd=working)
        where = subprocess.run([str(python), "-c", "import podium; print(podium.__file__)"], capture_output=True,
                               text=True, check=True, env=env, cwd=working).stdout.strip()
        assert where.startswith(str(tmp_path / "venv"))  # podium from the pack's wheel, not this checkout
        done = subprocess.run([str(python), str(pack / "predict.py"), "--data", str(hidden), "--out",
                               str(working / "submission.csv")], capture_output=True, text=True, env=env, cwd=working)
        assert done.returncode == 0, done.stderr[-2000:]
    sub = pd.read_csv(working / "submission.csv", dtype=str)
    sample = pd.read_csv(hidden / "sample_submission.csv", dtype=str)
    assert list(sub.columns) == list(sample.columns) and sub["image_id"].tolist() == sample["image_id"].tolist()
    here = podium.predict(packed["ens"], data=hidden, out=tmp_path / "here.csv")
    assert sub.equals(here)  # the pack's ensemble predicts as the ensemble folder itself does
