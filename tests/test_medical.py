"""Medical image formats: DICOM (windowing, MONOCHROME1, 8- and 16-bit) and 16-bit PNG/TIFF scaled by their range."""

import builtins
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import podium
from podium.config import DataConfig
from podium.core.errors import PodiumError
from podium.data.folders.ingest import load_competition
from podium.data.pixels.checks import check_file
from podium.data.pixels.images import is_image, read_image

pydicom = pytest.importorskip("pydicom")


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", **tags: object) -> Path:
    """A minimal uncompressed single-frame grey DICOM file with ``tags`` (e.g. WindowCenter) set."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.dataset.FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    bits = pixels.dtype.itemsize * 8
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.tobytes()
    try:
        ds.save_as(str(path), enforce_file_format=True)
    except TypeError:  # pydicom 2.x
        ds.save_as(str(path), write_like_original=False)
    return path


def _ramp(h: int = 16, w: int = 20, top: int = 4095, dtype: type = np.uint16) -> np.ndarray:
    return np.linspace(0, top, h * w).reshape(h, w).astype(dtype)


def test_dicom_window_centre_and_width_map_to_0_255(tmp_path: Path) -> None:
    pixels = _ramp()
    path = write_dicom(tmp_path / "a.dcm", pixels, WindowCenter=1000, WindowWidth=800)  # window 600..1400
    assert is_image(path) and is_image("B.DICOM")
    img = read_image(path)
    assert img.shape == (16, 20, 3) and img.dtype == np.uint8 and (img[..., 0] == img[..., 2]).all()
    grey = img[..., 0]
    assert (grey[pixels <= 600] == 0).all() and (grey[pixels >= 1400] == 255).all()
    inside = (pixels > 650) & (pixels < 1350)
    expected = np.rint((pixels[inside] - 600.0) * 255 / 800)
    assert np.abs(grey[inside] - expected).max() <= 1


def test_dicom_monochrome1_is_inverted_and_without_window_scaled_by_its_range(tmp_path: Path) -> None:
    pixels = _ramp(top=3000) + 500  # values 500..3500, no window tags
    m2 = read_image(write_dicom(tmp_path / "m2.dcm", pixels))[..., 0]
    m1 = read_image(write_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1"))[..., 0]
    assert m2.min() == 0 and m2.max() == 255 and m2[0, 0] == 0 and m2[-1, -1] == 255
    assert (m1.astype(int) == 255 - m2).all()


def test_dicom_8_bit_and_rescale_slope(tmp_path: Path) -> None:
    pixels = _ramp(top=200, dtype=np.uint8) + 20
    img = read_image(write_dicom(tmp_path / "b.dcm", pixels))
    assert img[..., 0].min() == 0 and img[..., 0].max() == 255
    # a CT-style rescale to Hounsfield units, windowed in those units: raw 1024 is 0 HU, the window 0..100 HU
    raw = np.full((8, 8), 1024, np.uint16)
    raw[:, 4:] = 1124
    hu = read_image(write_dicom(tmp_path / "ct.dcm", raw, RescaleSlope=1, RescaleIntercept=-1024,
                                WindowCenter=50, WindowWidth=100))[..., 0]
    assert (hu[:, :4] == 0).all() and (hu[:, 4:] == 255).all()


def test_broken_dicom_is_named_in_one_line(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "ok.dcm", _ramp())
    data = path.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) - 200])
    error = check_file(str(tmp_path / "cut.dcm"))["error"]
    assert error.startswith("cannot be decoded as DICOM") and "\n" not in error
    assert check_file(str(path))["error"] is None and check_file(str(path))["mode"] == "DICOM"
    # JPEG 2000 pixel data no plugin can decode: pydicom's multi-line reason (one line per plugin) becomes one line
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 40])
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    ds.save_as(str(tmp_path / "j2k.dcm"))
    error = check_file(str(tmp_path / "j2k.dcm"))["error"]
    assert error.startswith("cannot be decoded as DICOM (") and "\n" not in error and len(error) < 400


def test_missing_pydicom_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for cls in ("a", "b"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for k in range(3):
            path = write_dicom(tmp_path / "train" / cls / f"{k}.dcm", _ramp())
    real_import = builtins.__import__

    def no_pydicom(name: str, *args: object, **kwargs: object) -> object:
        if name == "pydicom" or name.startswith("pydicom."):
            raise ImportError("No module named 'pydicom'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pydicom)
    with pytest.raises(PodiumError, match=r"pydicom.*\[medical\]") as e:
        read_image(path)
    assert "\n" not in str(e.value)
    with pytest.raises(PodiumError, match=r"pydicom.*\[medical\]") as e:  # the folder check: once, not per file
        load_competition(tmp_path, DataConfig())
    assert "\n" not in str(e.value)


def test_16_bit_png_and_tiff_use_their_full_range(tmp_path: Path) -> None:
    pixels = _ramp(top=4095)  # 12-bit data: OpenCV's 8-bit decode would keep values 0..15
    for name in ("a.png", "a.tif"):
        cv2.imwrite(str(tmp_path / name), pixels)
        img = read_image(tmp_path / name)
        assert img.dtype == np.uint8 and img.shape == (16, 20, 3), name
        assert img.min() == 0 and img.max() == 255, name
        assert np.abs(img[..., 0].astype(int) - np.rint(pixels / 4095 * 255)).max() <= 1, name


def test_standalone_resize_helper_decodes_16_bit_as_podium_does(tmp_path: Path) -> None:
    from podium.inference.resize import load_rgb

    rgb = np.random.default_rng(0).integers(200, 3000, (12, 10, 3)).astype(np.uint16)
    for name in ("a.png", "a.tif"):
        cv2.imwrite(str(tmp_path / name), rgb)
        assert (load_rgb(str(tmp_path / name)) == read_image(tmp_path / name)).all(), name


def test_8_bit_tiff_decodes_as_before(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.tif"), rgb[:, :, ::-1])
    assert (read_image(tmp_path / "a.tif") == rgb).all()


def test_dicom_class_folders_train(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    rng = np.random.default_rng(0)
    root = tmp_path / "rsna"  # train/<class>/*.dcm, as RSNA pneumonia replicas ship
    for cls, level in (("normal", 800), ("pneumonia", 3000)):
        (root / "train" / cls).mkdir(parents=True)
        for k in range(10):
            pixels = np.clip(rng.normal(level, 300, (40, 40)), 0, 4095).astype(np.uint16)
            folder, photometric = root / "train" / cls, ("MONOCHROME1", "MONOCHROME2")[k % 2]
            write_dicom(folder / f"{cls}{k}.dcm", pixels, photometric, WindowCenter=2048, WindowWidth=4096)
    comp = load_competition(root, DataConfig())
    assert comp.classes == ("normal", "pneumonia") and len(comp.targets) == 20
    run = podium.train(root, overrides=tiny)
    assert run.status == "done" and 0 <= run.metrics["cv_score"] <= 1


def test_dicom_run_exports_and_predicts_with_onnx(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from podium.inference.onnx import predict_onnx_images

    rng = np.random.default_rng(1)
    root = tmp_path / "siim"
    for cls, level in (("benign", 800), ("malignant", 3000)):
        (root / "train" / cls).mkdir(parents=True)
        for k in range(8):
            pixels = np.clip(rng.normal(level, 300, (40, 40)), 0, 4095).astype(np.uint16)
            write_dicom(root / "train" / cls / f"{cls}{k}.dcm", pixels)
    run = podium.train(root, overrides=tiny)
    report = podium.export(run.path)  # the parity check decodes the DICOM files: onnxruntime against podium
    assert report["parity"]["max_abs_diff"] <= 1e-4 and report["parity"]["helper_pixels_equal"] == 1.0
    csv = predict_onnx_images(report["path"], root / "train" / "benign", tmp_path / "onnx.csv")
    assert len(pd.read_csv(csv)) == 8
