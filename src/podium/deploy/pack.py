"""``pack``: one folder to upload as a Kaggle dataset, for an inference notebook that runs with the internet off.

```
<out>/
  wheels/               podium's wheel (pip wheel --no-deps) and a wheel of every dependency the base lacks
  models/<name>/        each run (and each ensemble with its member runs beside it), slimmed to what prediction
                        needs: run.json, config.yaml, decisions.json, metrics.json, fold{k}/best.pt (EMA weights,
                        optionally fp16) and fold{k}/done.json
  predict.py            python predict.py --data /kaggle/input/<competition> --out /kaggle/working/submission.csv
  notebook_cell.py      the notebook cell: pip install --no-index --find-links wheels podium, then predict.py
  pack.json             what is inside: models, base, dependency wheels, fp16, sizes
```

The base is the environment the notebook already has: a requirements or ``pip freeze`` file, or by default
``KAGGLE_BASE`` (the packages of Kaggle's Python image that podium needs: torch, torchvision, numpy, pandas, ...).
Dependencies are walked from podium's requirements down, stopping at the base's packages (so torch's CUDA wheels are
never packed); the missing ones are fetched at the versions installed here (``pip wheel``, from PyPI).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from podium.core.errors import PodiumError
from podium.core.io import write_json, write_text
from podium.runs.ensemble import Ensemble, open_trained
from podium.runs.run import Run

# Packages of Kaggle's Python docker image (gcr.io/kaggle-images/python) that podium depends on, directly or not:
# left out of a pack by default. Kaggle also ships timm, albumentations and accelerate, but at versions that move
# with the image, so those are packed at the versions podium was trained with.
KAGGLE_BASE = ("torch", "torchvision", "torchaudio", "numpy", "pandas", "scipy", "scikit-learn", "pillow",
               "matplotlib", "opencv-python", "opencv-python-headless", "pyyaml", "requests", "tqdm", "packaging",
               "typing-extensions", "jinja2", "filelock", "fsspec", "sympy", "networkx", "psutil", "pywavelets",
               "huggingface-hub", "safetensors", "rich", "click", "pygments", "markdown-it-py", "mdurl", "six",
               "python-dateutil", "pytz", "tzdata", "joblib", "threadpoolctl", "pip", "setuptools", "wheel")


def read_base(base: str | Path | None) -> set[str]:
    """Package names (normalised) of a requirements or freeze file; None: ``KAGGLE_BASE``."""
    if base is None or str(base) == "kaggle":
        return {canonicalize_name(n) for n in KAGGLE_BASE}
    path = Path(base).expanduser()
    if not path.is_file():
        raise PodiumError(f"Base environment file {path} does not exist; give a requirements or `pip freeze` file "
                          "(or leave --base out for Kaggle's image).")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PodiumError(f"Base environment file {path} is not a text file; give a requirements or `pip freeze` file "
                          "(pip freeze > base.txt in the notebook's environment).") from None
    names = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)", line) if line and not line.startswith("-") else None
        if m:
            names.add(canonicalize_name(m.group(1)))
    return names


def missing_dependencies(base: set[str], root: str = "podium") -> dict[str, str]:
    """{name: installed version} of every package ``root`` needs here (its requirements, recursively, for this
    Python and platform) that ``base`` lacks; the walk stops at base packages, whose own dependencies are theirs."""
    missing, todo, seen = {}, [root], set()
    while todo:
        name = todo.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise PodiumError(f"{name}, which podium needs, is not installed here; install it (pip install -e .) "
                              "and pack again.") from None
        if key != canonicalize_name(root):
            missing[key] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if canonicalize_name(req.name) not in base:
                todo.append(req.name)
    return dict(sorted(missing.items()))


def project_root() -> Path:
    """podium's source checkout (the folder with its pyproject.toml), which the wheel is built from."""
    root = Path(__file__).resolve().parents[3]  # src/podium/deploy/pack.py -> the checkout
    if not (root / "pyproject.toml").is_file():
        raise PodiumError(f"podium is installed without its source ({root} has no pyproject.toml); pack from a "
                          "checkout installed with pip install -e .")
    return root


def build_wheel(dest: Path) -> Path:
    """podium's wheel, built from a copy of the checkout (nothing is written into it), without dependencies."""
    root = project_root()
    with tempfile.TemporaryDirectory(prefix="podium-wheel-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(root / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, src / name)
        _pip(["wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dest), str(src)], "build podium's wheel")
    wheels = sorted(dest.glob("podium-*.whl"))
    if not wheels:
        raise PodiumError("pip built no podium wheel.")
    return wheels[-1]


def download_wheels(packages: dict[str, str], dest: Path, python_version: str = "", platform: str = "") -> None:
    """Wheels of ``packages`` at their versions: ``pip wheel`` (downloaded, or built from a source-only release
    such as grad-cam's); for another target (``python_version``/``platform``, e.g. 3.11 and manylinux2014_x86_64)
    ``pip download`` of binary wheels only."""
    if not packages:
        return
    pins = [f"{n}=={v}" for n, v in packages.items()]
    if python_version or platform:
        target = [*(["--python-version", python_version] if python_version else []),
                  *(["--platform", platform] if platform else [])]
        _pip(["download", "--no-deps", "--only-binary=:all:", "--dest", str(dest), *target, *pins],
             "download the dependency wheels for that target (needs PyPI; source-only packages need a matching "
             "machine)")
    else:
        _pip(["wheel", "--no-deps", "--wheel-dir", str(dest), *pins], "fetch the dependency wheels (needs PyPI)")


def _pip(args: list[str], what: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check"], capture_output=True,
                          text=True)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise PodiumError(f"pip could not {what}: {last}")


def pack_models(folders: list[str | Path], models: Path, fp16: bool) -> list[str]:
    """Slimmed copies of the runs and ensembles (each ensemble's member runs beside it) under ``models``; returns
    the names of the folders named by the user, in order."""
    names, copied = [], set()
    for folder in folders:
        owner = open_trained(folder, "pack")
        todo = [owner]
        if isinstance(owner, Ensemble):
            todo += [Run(owner.member_dir(m)) for m in owner.members["members"]]
        for item in todo:
            if item.path.name in copied:
                continue
            copied.add(item.path.name)
            item.export_for_inference(models / item.path.name, fp16=fp16)
        names.append(owner.path.name)
    return names


def pack(folders: list[str | Path] | tuple[str | Path, ...], out: str | Path, base: str | Path | None = None,
         fp16: bool = False, dataset: str = "podium-pack", python_version: str = "", platform: str = ""
         ) -> dict[str, Any]:
    """Write the folder ``out`` (new or empty) to upload as the Kaggle dataset ``dataset``: wheels, slimmed models,
    ``predict.py`` and the notebook cell. Returns pack.json's content."""
    if not folders:
        raise PodiumError("Name at least one run or ensemble folder to pack.")
    for folder in folders:  # every input is checked before anything is written or downloaded
        open_trained(folder, "pack")
    out = Path(out).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PodiumError(f"--out {out} already exists and is not empty; give a new folder.")
    deps = missing_dependencies(read_base(base))
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        wheel = build_wheel(partial / "wheels")
        download_wheels(deps, partial / "wheels", python_version, platform)
        names = pack_models(list(folders), partial / "models", fp16)
        write_text(partial / "predict.py", PREDICT_PY.replace("{default}", names[0]))
        write_text(partial / "notebook_cell.py", NOTEBOOK_CELL.replace("{dataset}", dataset))
        sizes = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                 for p in (partial / "wheels", partial / "models")}
        info = {"podium": metadata.version("podium"), "wheel": wheel.name, "models": names, "fp16": fp16,
                "base": str(base) if base is not None else "kaggle", "dependency_wheels": deps, "bytes": sizes,
                "dataset": dataset}
        write_json(partial / "pack.json", info)
        if out.exists():
            out.rmdir()
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return info


PREDICT_PY = '''"""Predict a competition folder's test set with a model of this pack (podium pack):

    python predict.py --data /kaggle/input/<competition> --out /kaggle/working/submission.csv [--model NAME]

Install podium first, offline: pip install --no-index --find-links <this folder>/wheels podium
"""

import argparse
import os
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Competition folder (its sample submission lists the test set).")
    parser.add_argument("--out", default="submission.csv", help="The submission file to write.")
    parser.add_argument("--model", default="{default}", help="A run or ensemble folder under models/.")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda.")
    args = parser.parse_args()
    # decoded images are cached on local scratch space, not in the notebook's output folder
    os.environ.setdefault("PODIUM_CACHE", os.path.join(tempfile.gettempdir(), "podium-cache"))
    import podium

    sub = podium.predict(HERE / "models" / args.model, data=args.data, out=args.out, device=args.device)
    print(f"wrote {args.out}: {len(sub)} rows, validated against the sample submission")


if __name__ == "__main__":
    main()
'''

NOTEBOOK_CELL = '''# Kaggle notebook, internet off; inputs: the competition and this folder as dataset "{dataset}"
import subprocess, sys

PACK = "/kaggle/input/{dataset}"
COMP = "/kaggle/input/<competition>"  # the competition's folder
subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--find-links", f"{PACK}/wheels", "podium"],
               check=True)
subprocess.run([sys.executable, f"{PACK}/predict.py", "--data", COMP, "--out", "/kaggle/working/submission.csv"],
               check=True)
'''

