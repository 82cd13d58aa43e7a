"""Noisy labels: does podium find the flipped labels, and which action or loss gets the score back?

For potato (3 classes) and plant-pathology-2021-mini (multilabel), a seeded clean holdout (``--holdout`` of the
images, its labels never touched) becomes the data folder's test set, and ``--rows`` of the rest are the training
rows, of which a share has its label flipped:
- symmetric: a flipped row gets another class drawn at random (multilabel: another row's label set);
- class-dependent: class k becomes class k+1 (multilabel: each label of the row is renamed the same way), the
  confusion a tired annotator makes between two similar diseases.

Every run is the same recipe (packaged tf_efficientnet_lite0 ImageNet weights, ``--size`` px, ``--folds`` folds,
``--epochs`` epochs, the same folds for all) and is scored on the clean holdout from its test predictions: accuracy
(potato), mean column-wise AUC (plant, threshold-free).

Per noise setting: the noisy run's suspects (suspects.csv) against the flipped set (precision, recall), and the
holdout score of the noisy run. At ``--compare`` (default symmetric 20%) also: each ``data.suspect_action`` with the
noisy run as the source, each noise-robust loss, and clean labels (the ceiling); the share of the noisy-to-clean
gap each one recovers.

    flock /tmp/podium-bench.lock env PYTHONPATH=src python -m bench.label_noise [--only potato] [--rows 1200]

Results: bench/results/label_noise.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

import podium
from bench.common import DATA, RESULTS, machine, show, write_results

ACTIONS = ("drop", "relabel", "soft", "weight")
LOSSES = ("bitempered", "taylor", "sce", "gce")


def potato_rows() -> pd.DataFrame:
    """Every potato image with its class (the folder name)."""
    root = DATA / "potato" / "train"
    return pd.DataFrame([{"path": str(p), "labels": p.parent.name} for p in sorted(root.glob("*/*"))])


def plant_rows() -> pd.DataFrame:
    """Every plant-pathology-2021-mini training image with its space-separated labels."""
    src = DATA / "plant-pathology-2021-mini"
    table = pd.read_csv(src / "train.csv")
    return pd.DataFrame({"path": [str(src / "train_images" / i) for i in table["image"]], "labels": table["labels"]})


def split(rows: pd.DataFrame, holdout: float, n_train: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded clean holdout and ``n_train`` training rows from the rest."""
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = int(len(rows) * holdout)
    test, train = rows.iloc[order[:cut]], rows.iloc[order[cut:]]
    return train.iloc[:n_train].reset_index(drop=True), test.reset_index(drop=True)


def flip(labels: pd.Series, rate: float, kind: str, seed: int) -> tuple[pd.Series, np.ndarray]:
    """Labels with ``rate`` of the rows flipped (``kind``: symmetric or class); the flipped mask."""
    rng = np.random.default_rng(seed)
    classes = sorted({c for s in labels for c in s.split(" ")})
    picked = rng.random(len(labels)) < rate
    out = labels.copy()
    sets = labels.unique()
    for i in np.flatnonzero(picked):
        given = labels.iloc[i]
        if kind == "class":
            out.iloc[i] = " ".join(sorted({classes[(classes.index(c) + 1) % len(classes)] for c in given.split(" ")}))
        else:
            others = [s for s in (sets if len(sets) > len(classes) else classes) if s != given]
            out.iloc[i] = others[rng.integers(len(others))]
    return out, (out != labels).to_numpy()


def view(root: Path, name: str, train: pd.DataFrame, labels: pd.Series, test: pd.DataFrame) -> Path:
    """A CSV-layout data folder of symlinks: train.csv with ``labels``, the clean holdout as test_images/."""
    folder = root / name
    (folder / "train_images").mkdir(parents=True)
    (folder / "test_images").mkdir()
    ids = [f"r{i:05d}{Path(p).suffix}" for i, p in enumerate(train["path"])]
    for i, p in zip(ids, train["path"]):
        os.symlink(p, folder / "train_images" / i)
    for i, p in enumerate(test["path"]):
        os.symlink(p, folder / "test_images" / f"h{i:05d}{Path(p).suffix}")
    pd.DataFrame({"image": ids, "labels": labels.to_numpy()}).to_csv(folder / "train.csv", index=False)
    return folder


def holdout_score(run: podium.Run, test: pd.DataFrame) -> float:
    """Accuracy (single-label) or mean column-wise AUC (multilabel) of the test predictions on the clean holdout."""
    pred = pd.read_csv(run.test_predictions_path)
    pred["n"] = pred["id"].str.slice(1, 6).astype(int)
    pred = pred.sort_values("n")
    classes = list(run.info["classes"])
    probs = pred[classes].to_numpy()
    truth = [set(s.split(" ")) for s in test["labels"]]
    if run.info["task"] == "multilabel":
        y = np.array([[c in t for c in classes] for t in truth], dtype=int)
        return float(np.mean([roc_auc_score(y[:, k], probs[:, k]) for k in range(len(classes)) if 0 < y[:, k].sum()
                              < len(y)]))
    return float(np.mean([classes[k] in t for k, t in zip(probs.argmax(axis=1), truth)]))


def recipe(args: argparse.Namespace, work: Path, name: str, *extra: str) -> list[str]:
    """The overrides every run of the bench shares."""
    return ["model.name=tf_efficientnet_lite0", "model.pretrained=packaged", f"model.img_size={args.size}",
            "train.batch_size=32", "train.threads=2", "train.num_workers=0", f"train.epochs={args.epochs}",
            f"cv.folds={args.folds}", "predict.tta=identity", "run.report=false", f"run.root={work}",
            f"run.name={name}", *extra]


def suspects_found(run: podium.Run, flipped: np.ndarray) -> dict:
    """Precision and recall of the run's OOF suspects against the flipped rows."""
    table = run.suspects()
    found = {int(i[1:6]) for i in table.loc[table["source"] == "oof", "id"]}
    truth = set(np.flatnonzero(flipped).tolist())
    hit = len(found & truth)
    return {"suspects": len(found), "flipped": len(truth), "precision": hit / max(len(found), 1),
            "recall": hit / max(len(truth), 1)}


def bench(name: str, rows: pd.DataFrame, args: argparse.Namespace, root: Path) -> dict:
    """Every noise setting on one dataset."""
    train, test = split(rows, args.holdout, args.rows)
    out: dict = {"train_rows": len(train), "holdout_rows": len(test), "settings": {}}

    def run_on(folder: Path, key: str, *extra: str) -> tuple[podium.Run, float, float]:
        t0 = time.perf_counter()
        run = podium.train(folder, overrides=recipe(args, root / "runs", f"{name}-{key}", *extra))
        score = holdout_score(run, test)
        print(f"{name} {key}: holdout {score:.4f}  cv {run.metrics['cv_score']:.4f}  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        return run, score, time.perf_counter() - t0

    clean_dir = view(root, f"{name}-clean", train, train["labels"], test)
    _, clean, _ = run_on(clean_dir, "clean")
    out["clean"] = clean
    for setting in args.settings:
        kind, rate = setting.split(":")
        labels, flipped = flip(train["labels"], float(rate), kind, seed=1)
        folder = view(root, f"{name}-{kind}-{rate}", train, labels, test)
        noisy, score, seconds = run_on(folder, f"{kind}-{rate}-noisy")
        row = {"noisy": score, **suspects_found(noisy, flipped), "seconds": round(seconds)}
        if setting == args.compare:
            for action in ACTIONS:
                row[f"action {action}"] = run_on(folder, f"{kind}-{rate}-{action}", f"data.suspects={noisy.path}",
                                                 f"data.suspect_action={action}")[1]
            for loss in LOSSES:
                row[f"loss {loss}"] = run_on(folder, f"{kind}-{rate}-{loss}", f"train.loss={loss}")[1]
        out["settings"][setting] = row
    return out


def table_rows(results: dict) -> list[tuple[str, str]]:
    """The headline numbers: suspects' precision and recall, scores and the share of the gap recovered."""
    rows = []
    for data, r in results.items():
        rows.append((f"{data}: clean labels (ceiling)", f"{r['clean']:.4f}"))
        for setting, s in r["settings"].items():
            gap = r["clean"] - s["noisy"]
            rows.append((f"{data} {setting}: suspects", f"precision {s['precision']:.2f}, recall {s['recall']:.2f} "
                         f"({s['suspects']} flagged, {s['flipped']} flipped)"))
            rows.append((f"{data} {setting}: noisy labels", f"{s['noisy']:.4f}"))
            for key, v in s.items():
                if key.startswith(("action ", "loss ")):
                    share = f", {(v - s['noisy']) / gap:+.0%} of the gap" if gap > 1e-9 else ""
                    rows.append((f"{data} {setting}: {key}", f"{v:.4f} ({v - s['noisy']:+.4f}{share})"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1200, help="training rows (seeded, after the holdout)")
    ap.add_argument("--holdout", type=float, default=0.25)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--settings", nargs="+", default=["symmetric:0.1", "symmetric:0.2", "symmetric:0.4",
                                                      "class:0.2"], help="kind:rate, kind symmetric or class")
    ap.add_argument("--compare", default="symmetric:0.2", help="the setting that gets every action and loss")
    ap.add_argument("--only", choices=("potato", "plant"), default=None)
    args = ap.parse_args()
    info = machine()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="podium-noise-") as tmp:
        root = Path(tmp)
        if args.only in (None, "potato"):
            results["potato"] = bench("potato", potato_rows(), args, root)
        if args.only in (None, "plant"):
            results["plant-pathology-2021-mini"] = bench("plant", plant_rows(), args, root)
    previous = RESULTS / "label_noise.json"  # a dataset not run now keeps its earlier rows (said in the note)
    kept = {} if args.only is None or not previous.is_file() else json.loads(previous.read_text())["results"]
    results = {**{k: v for k, v in kept.items() if k not in results}, **results}
    rows = table_rows(results)
    info["load_avg_at_end"] = os.getloadavg()[0]
    note = (f"lite0 {args.size} px, {args.folds} folds, {args.epochs} epochs, identity TTA; {args.rows} training rows "
            f"and a clean {args.holdout:.0%} holdout per dataset, scored on the holdout (potato accuracy, plant mean "
            f"AUC). Load average {info['load_avg_at_start']:.1f} at the start, {info['load_avg_at_end']:.1f} at the "
            "end; scores do not depend on load.")
    show(rows)
    write_results("label_noise", {"machine": info, "args": vars(args), "results": results}, rows, note)


if __name__ == "__main__":
    main()
