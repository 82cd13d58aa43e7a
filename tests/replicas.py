"""Faithful miniatures of reference competitions' folders as downloaded: the same nesting, file names, CSV headers,
id formats, extra columns and sample submission, with small synthetic images (tests/datagen.py). Each function
writes one folder and returns what a valid submission must look like and the metric the competition scores, which
podium infers with no flags (``Expect``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from datagen import class_image, multi_image, write_image


@dataclass(frozen=True)
class Expect:
    """What podium should find in a replica and write for it."""

    root: Path
    task: str
    columns: tuple[str, ...]  # the submission's header
    test_rows: int
    group: str = ""  # the group column it should detect
    labels: tuple[str, ...] = ()  # the label column(s) it should pick
    metric: str = ""  # the competition's metric, what cv.metric=auto must resolve to


def _hex(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("0123456789abcdef"), n))


def plant_pathology_2020(root: Path, n: int = 32, n_test: int = 6) -> Expect:
    """images/Train_0.jpg ... Test_0.jpg in one folder; train.csv one-hot; test.csv; probability sample."""
    rng, classes = np.random.default_rng(20), ["healthy", "multiple_diseases", "rust", "scab"]
    rows = []
    for i in range(n):
        k = i % 4
        write_image(root / "images" / f"Train_{i}.jpg", class_image(k, rng))
        rows.append({"image_id": f"Train_{i}", **{c: int(j == k) for j, c in enumerate(classes)}})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    test = [f"Test_{i}" for i in range(n_test)]
    for i, t in enumerate(test):
        write_image(root / "images" / f"{t}.jpg", class_image(i % 4, rng))
    pd.DataFrame({"image_id": test}).to_csv(root / "test.csv", index=False)
    pd.DataFrame({"image_id": test, **{c: 0.25 for c in classes}}).to_csv(root / "sample_submission.csv", index=False)
    return Expect(root, "multiclass", ("image_id", *classes), n_test, labels=tuple(classes), metric="mean_auc")


def plant_pathology_2021(root: Path, n: int = 36, n_test: int = 5) -> Expect:
    """train_images/<hex>.jpg; train.csv image,labels (space-separated); test_images/; sample image,labels."""
    rng = np.random.default_rng(21)
    classes = ["complex", "frog_eye_leaf_spot", "healthy", "powdery_mildew"]
    rows = []
    for i in range(n):
        active = [i % 4] if i % 3 else sorted({i % 4, (i + 1) % 4})
        name = f"{_hex(rng, 16)}.jpg"
        write_image(root / "train_images" / name, multi_image(active, rng))
        rows.append({"image": name, "labels": " ".join(classes[k] for k in active)})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    test = [f"{_hex(rng, 16)}.jpg" for _ in range(n_test)]
    for i, t in enumerate(test):
        write_image(root / "test_images" / t, multi_image([i % 4], rng))
    pd.DataFrame({"image": test, "labels": "healthy"}).to_csv(root / "sample_submission.csv", index=False)
    return Expect(root, "multilabel", ("image", "labels"), n_test, labels=("labels",), metric="f1_samples")


CASSAVA = {"0": "Cassava Bacterial Blight (CBB)", "1": "Cassava Brown Streak Disease (CBSD)",
           "2": "Cassava Green Mottle (CGM)", "3": "Cassava Mosaic Disease (CMD)", "4": "Healthy"}


def cassava(root: Path, n: int = 40, n_test: int = 1) -> Expect:
    """train_images/<digits>.jpg; train.csv image_id,label (0-4); label_num_to_disease_map.json; test_images/ with
    one image; sample_submission.csv image_id,label."""
    rng = np.random.default_rng(5)
    rows = []
    for i in range(n):
        name = f"{1000015157 + 7919 * i}.jpg"
        write_image(root / "train_images" / name, class_image(i % 5, rng))
        rows.append({"image_id": name, "label": i % 5})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    (root / "label_num_to_disease_map.json").write_text(json.dumps(CASSAVA))
    test = ["2216849948.jpg"][:n_test]
    for t in test:
        write_image(root / "test_images" / t, class_image(3, rng))
    pd.DataFrame({"image_id": test, "label": 4}).to_csv(root / "sample_submission.csv", index=False)
    return Expect(root, "multiclass", ("image_id", "label"), n_test, labels=("label",), metric="accuracy")


PADDY = ("bacterial_leaf_blight", "blast", "normal")


def paddy(root: Path, n: int = 36, n_test: int = 4) -> Expect:
    """train.csv image_id,label,variety,age; train_images/<label>/<image_id>; test_images/; sample image_id,label."""
    rng = np.random.default_rng(9)
    rows = []
    for i in range(n):
        label, name = PADDY[i % 3], f"{100330 + i}.jpg"
        write_image(root / "train_images" / label / name, class_image(i % 3, rng))
        rows.append({"image_id": name, "label": label, "variety": ["ADT45", "KarnatakaPonni", "Ponni"][i % 5 % 3],
                     "age": int(rng.choice([45, 50, 55, 60, 65, 70]))})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    test = [f"{200001 + i}.jpg" for i in range(n_test)]
    for i, t in enumerate(test):
        write_image(root / "test_images" / t, class_image(i % 3, rng))
    pd.DataFrame({"image_id": test, "label": ""}).to_csv(root / "sample_submission.csv", index=False)
    return Expect(root, "multiclass", ("image_id", "label"), n_test, labels=("label",), metric="accuracy")


def aptos(root: Path, n: int = 40, n_test: int = 4) -> Expect:
    """train_images/<id_code>.png; train.csv id_code,diagnosis (0-4); test.csv; test_images/; sample
    id_code,diagnosis."""
    rng = np.random.default_rng(19)
    rows = []
    for i in range(n):
        code = _hex(rng, 12)
        write_image(root / "train_images" / f"{code}.png", class_image(i % 5, rng))
        rows.append({"id_code": code, "diagnosis": i % 5})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    test = [_hex(rng, 12) for _ in range(n_test)]
    for i, t in enumerate(test):
        write_image(root / "test_images" / f"{t}.png", class_image(i % 5, rng))
    pd.DataFrame({"id_code": test}).to_csv(root / "test.csv", index=False)
    pd.DataFrame({"id_code": test, "diagnosis": 0}).to_csv(root / "sample_submission.csv", index=False)
    return Expect(root, "ordinal", ("id_code", "diagnosis"), n_test, labels=("diagnosis",), metric="qwk")


def siim_isic(root: Path, patients: int = 16, n_test: int = 4) -> Expect:
    """train.csv image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,
    target; jpeg/train/ISIC_*.jpg; test.csv; jpeg/test/; sample image_name,target."""
    rng = np.random.default_rng(2020)
    rows, k = [], 0
    sites = ["head/neck", "upper extremity", "lower extremity", "torso", ""]
    for p in range(patients):
        pid = f"IP_{7279968 + 1013 * p}"
        for _ in range(3):
            target = int(k % 3 == 0)
            name = f"ISIC_{15719 + 37 * k:07d}"
            write_image(root / "jpeg" / "train" / f"{name}.jpg", class_image(target, rng))
            diagnosis = "melanoma" if target else ["unknown", "nevus", "seborrheic keratosis"][k % 3 % 2 + p % 2]
            rows.append({"image_name": name, "patient_id": pid, "sex": ["male", "female"][p % 2],
                         "age_approx": str(float(rng.choice([30, 35, 40, 45, 50, 55]))),
                         "anatom_site_general_challenge": sites[k % 5],
                         "diagnosis": diagnosis, "benign_malignant": "malignant" if target else "benign",
                         "target": target})
            k += 1
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    test = [f"ISIC_{52060 + 11 * i:07d}" for i in range(n_test)]
    for i, t in enumerate(test):
        write_image(root / "jpeg" / "test" / f"{t}.jpg", class_image(i % 2, rng))
    pd.DataFrame({"image_name": test, "patient_id": "IP_0000001", "sex": "male", "age_approx": "45.0",
                  "anatom_site_general_challenge": "torso"}).to_csv(root / "test.csv", index=False)
    pd.DataFrame({"image_name": test, "target": 0}).to_csv(root / "sample_submission.csv", index=False)
    return Expect(root, "binary", ("image_name", "target"), n_test, group="patient_id", labels=("target",),
                  metric="roc_auc")


RANZCR = ("ETT - Abnormal", "ETT - Borderline", "ETT - Normal", "NGT - Abnormal", "NGT - Borderline",
          "NGT - Incompletely Imaged", "NGT - Normal", "CVC - Abnormal", "CVC - Borderline", "CVC - Normal",
          "Swan Ganz Catheter Present")


def ranzcr(root: Path, n: int = 44, n_test: int = 3) -> Expect:
    """train.csv StudyInstanceUID, 11 binary label columns, PatientID; train/<uid>.jpg; test/; sample with one
    probability column per label."""
    rng = np.random.default_rng(11)
    rows = []
    for i in range(n):
        uid = f"1.2.826.0.1.3680043.8.498.{int(rng.integers(10**17, 10**18))}"
        active = sorted({i % 11, (i + 3) % 11}) if i % 2 else [i % 11]
        write_image(root / "train" / f"{uid}.jpg", multi_image(active, rng))
        rows.append({"StudyInstanceUID": uid, **{c: int(j in active) for j, c in enumerate(RANZCR)},
                     "PatientID": f"{_hex(rng, 8)}-{i // 2}"})
    df = pd.DataFrame(rows)
    df["PatientID"] = [f"ec89415d1-{i // 2}" for i in range(n)]  # two studies per patient
    df.to_csv(root / "train.csv", index=False)
    test = [f"1.2.826.0.1.3680043.8.498.{int(rng.integers(10**17, 10**18))}" for _ in range(n_test)]
    for i, t in enumerate(test):
        write_image(root / "test" / f"{t}.jpg", multi_image([i], rng))
    pd.DataFrame({"StudyInstanceUID": test, **{c: 0 for c in RANZCR}}).to_csv(root / "sample_submission.csv",
                                                                             index=False)
    return Expect(root, "multilabel", ("StudyInstanceUID", *RANZCR), n_test, group="PatientID", labels=RANZCR,
                  metric="mean_auc")


def aptos_2015(root: Path, n: int = 30, n_test: int = 4) -> Expect:
    """Diabetic Retinopathy (APTOS 2015): train/<n>_<left|right>.jpeg; trainLabels.csv image,level (0-4) with ids
    without the extension; test/; sample image,level."""
    rng = np.random.default_rng(2015)
    ids = [f"{10 + k // 2}_{('left', 'right')[k % 2]}" for k in range(n)]
    for k, i in enumerate(ids):
        write_image(root / "train" / f"{i}.jpeg", class_image(k % 5, rng))
    pd.DataFrame({"image": ids, "level": [k % 5 for k in range(n)]}).to_csv(root / "trainLabels.csv", index=False)
    test = [f"{1 + k // 2}_{('left', 'right')[k % 2]}" for k in range(n_test)]
    for k, t in enumerate(test):
        write_image(root / "test" / f"{t}.jpeg", class_image(k % 5, rng))
    pd.DataFrame({"image": test, "level": 0}).to_csv(root / "sample_submission.csv", index=False)
    return Expect(root, "ordinal", ("image", "level"), n_test, labels=("level",), metric="qwk")


def dogs_vs_cats(root: Path, n: int = 24, n_test: int = 4, sample_label: str = "cat") -> Expect:
    """Dogs vs. Cats: train/cat.0.jpg, train/dog.0.jpg (labels in the names); test/1.jpg; sample id,label. A label
    sample is scored by accuracy; Dogs vs. Cats Redux's sample holds 0.5 (the probability of a dog, log loss)."""
    rng = np.random.default_rng(12)
    for k in range(n):
        write_image(root / "train" / f"{('cat', 'dog')[k % 2]}.{k // 2}.jpg", class_image(k % 2, rng))
    test = [str(k + 1) for k in range(n_test)]
    for k, t in enumerate(test):
        write_image(root / "test" / f"{t}.jpg", class_image(k % 2, rng))
    pd.DataFrame({"id": test, "label": sample_label}).to_csv(root / "sample_submission.csv", index=False)
    return Expect(root, "binary", ("id", "label"), n_test, metric="accuracy" if sample_label == "cat" else "log_loss")


def dogs_vs_cats_redux(root: Path) -> Expect:
    """Dogs vs. Cats Redux: the same folder, its sample id,label holding 0.5."""
    return dogs_vs_cats(root, sample_label="0.5")


REPLICAS = {"plant_pathology_2020": plant_pathology_2020, "plant_pathology_2021": plant_pathology_2021,
            "cassava": cassava, "paddy": paddy, "aptos": aptos, "siim_isic": siim_isic, "ranzcr": ranzcr,
            "aptos_2015": aptos_2015, "dogs_vs_cats": dogs_vs_cats, "dogs_vs_cats_redux": dogs_vs_cats_redux}


def cassava_2019(root: Path, per_class: int = 3) -> Path:
    """The 2019 data as ``data.extra``: train/<cbb|cbsd|cgm|cmd|healthy>/train-<name>-<k>.jpg."""
    rng = np.random.default_rng(2019)
    for k, name in enumerate(("cbb", "cbsd", "cgm", "cmd", "healthy")):
        for i in range(per_class):
            write_image(root / "train" / name / f"train-{name}-{i}.jpg", class_image(k, rng))
    return root
