"""Decoders for the image formats OpenCV's 8-bit colour decode gets wrong: DICOM (medical scans) and 16-bit or
floating-point PNG and TIFF. Each decoder claims a file by its magic bytes and owns how its pixels become 8-bit RGB;
everything it does not claim goes through ``images.decode_image``'s OpenCV/Pillow path unchanged."""

from __future__ import annotations

import io
from typing import Protocol

import cv2
import numpy as np

from podium.core.errors import PodiumError, install_hint
from podium.core.registry import Registry


class UnreadableImage(ValueError):
    """An image file that cannot be decoded; the message says why."""


class Decoder(Protocol):
    """One file format: the extensions that name it, the colour mode ``podium inspect`` shows when Pillow cannot read
    its header, whether the standalone ``inference/resize.py`` decodes it alike (numpy + OpenCV only), whether a
    file's bytes are in it, and its decode."""

    extensions: tuple[str, ...]
    mode: str
    standalone: bool

    def claims(self, head: bytes) -> bool:
        """Whether a file starting with ``head`` (its first 132 bytes or fewer) is this decoder's."""
        ...

    def decode(self, data: np.ndarray) -> np.ndarray | None:
        """The file as HxWx3 uint8 RGB; None hands it to the default OpenCV/Pillow decode."""
        ...

    def dimensions(self, data: bytes) -> tuple[int, int] | None:
        """(width, height) from the header, no pixels decoded (an upload's size check, ``podium serve``); None where
        Pillow reads the header."""
        ...


IMAGE_DECODERS: Registry[Decoder] = Registry("image decoder")
HEAD_BYTES = 132  # DICOM's magic sits after a 128-byte preamble


def to_uint8(arr: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Scale ``arr`` linearly so ``lo`` (default: its minimum) becomes 0 and ``hi`` (its maximum) 255, clipping
    outside; a flat image (``hi <= lo``) becomes 0 where it is at or below ``lo``, else 255."""
    arr = arr.astype(np.float32)
    lo = float(arr.min()) if lo is None else lo
    hi = float(arr.max()) if hi is None else hi
    if hi <= lo:
        return np.where(arr > lo, 255, 0).astype(np.uint8)
    return np.clip(np.rint((arr - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def to_rgb(arr: np.ndarray) -> np.ndarray:
    """A grey (HxW or HxWx1) or colour uint8 array as HxWx3 RGB (alpha dropped)."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    return np.ascontiguousarray(arr[:, :, :3])


class HighDepth:
    """16-bit and floating-point PNG and TIFF, scaled by the image's own range: OpenCV's IMREAD_COLOR keeps the top
    8 bits, which makes 12-bit scans (values up to 4095) nearly black. 8-bit files decode as they always have."""

    extensions = (".png", ".tif", ".tiff")
    mode = "?"  # Pillow reads these headers
    standalone = True

    def claims(self, head: bytes) -> bool:
        """A 16-bit PNG (bit depth byte of IHDR), or any TIFF (its depth is only known after decoding)."""
        if head[:8] == b"\x89PNG\r\n\x1a\n":
            return len(head) > 24 and head[24] == 16
        return head[:4] in (b"II*\x00", b"MM\x00*")

    def decode(self, data: np.ndarray) -> np.ndarray | None:
        """Decode at full depth (EXIF orientation applied, alpha dropped), then scale min..max to 0..255."""
        img = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
        if img is None or img.dtype == np.uint8:
            return None  # an 8-bit TIFF, or one OpenCV cannot read: the default path (and Pillow) as before
        return cv2.cvtColor(to_uint8(img), cv2.COLOR_BGR2RGB)

    def dimensions(self, data: bytes) -> tuple[int, int] | None:
        """None: Pillow reads PNG and TIFF headers."""
        return None


IMAGE_DECODERS.register("high_depth")(HighDepth())


class Dicom:
    """DICOM (``.dcm``) through pydicom: the modality LUT (rescale slope/intercept), then the VOI LUT or the window
    centre/width scaled to 0..255 (else the image's own range), MONOCHROME1 inverted, grey made RGB."""

    extensions = (".dcm", ".dicom")
    mode = "DICOM"
    standalone = False  # needs pydicom

    def claims(self, head: bytes) -> bool:
        """The ``DICM`` magic after the 128-byte preamble."""
        return head[128:132] == b"DICM"

    def decode(self, data: np.ndarray) -> np.ndarray:
        """The first frame as 8-bit RGB; a compressed transfer syntax without its pydicom plugin is unreadable."""
        pydicom = _pydicom()
        try:
            ds = pydicom.dcmread(io.BytesIO(data.tobytes()), force=True)
            pixels = ds.pixel_array
        except Exception as e:  # noqa: BLE001 - pydicom raises many types; its reason is what the user needs
            # pydicom lists each plugin's failure on its own line: joined, so the file's reason stays one line
            reason = " ".join(line.strip() for line in str(e).splitlines() if line.strip())[:300] or type(e).__name__
            raise UnreadableImage(f"cannot be decoded as DICOM ({reason})") from None
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            pixels = pixels[0]  # a multi-frame scan: its first frame, as for an animated GIF
        if int(ds.get("SamplesPerPixel", 1)) > 1:
            return to_rgb(to_uint8(pixels))  # colour (pydicom already converted YBR to RGB): no windowing applies
        img = _window(ds, _modality(ds, pixels))
        if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
            img = 255 - img  # MONOCHROME1 stores low values as white
        return to_rgb(img)


    def dimensions(self, data: bytes) -> tuple[int, int] | None:
        """Columns x Rows from the DICOM header (the pixel data is not read)."""
        pydicom = _pydicom()
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
            return int(ds.Columns), int(ds.Rows)
        except Exception as e:  # noqa: BLE001 - pydicom raises many types; a header without a size is no image
            raise UnreadableImage(f"has no readable DICOM image header ({type(e).__name__})") from None


IMAGE_DECODERS.register("dicom")(Dicom())


def _pydicom():  # noqa: ANN202 - the module, imported only where a DICOM file is met
    """pydicom, or one line naming the extra that installs it."""
    try:
        import pydicom
    except ImportError:
        raise PodiumError(f"DICOM files need pydicom, which is not installed: {install_hint('medical')}") from None
    return pydicom


def _modality(ds: object, pixels: np.ndarray) -> np.ndarray:
    """The pixels in modality units (e.g. Hounsfield) via pydicom's modality LUT."""
    try:
        from pydicom.pixels import apply_modality_lut
    except ImportError:  # pydicom 2.x
        from pydicom.pixel_data_handlers.util import apply_modality_lut
    return apply_modality_lut(pixels, ds)


def _window(ds: object, arr: np.ndarray) -> np.ndarray:
    """8-bit pixels through the VOI LUT sequence (scaled by its output's range) or the first window centre/width
    (its edges become 0 and 255); with neither, the image's own range."""
    if "VOILUTSequence" in ds:
        try:
            from pydicom.pixels import apply_voi_lut
        except ImportError:  # pydicom 2.x
            from pydicom.pixel_data_handlers.util import apply_voi_lut
        return to_uint8(apply_voi_lut(arr, ds, prefer_lut=True))
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre is None or width is None:
        return to_uint8(arr)
    centre, width = (float(v[0]) if hasattr(v, "__len__") and not isinstance(v, str) else float(v)
                     for v in (centre, width))
    return to_uint8(arr, centre - width / 2, centre + width / 2)


def decoder_for(head: bytes) -> Decoder | None:
    """The registered decoder that claims a file starting with ``head``, or None (the default decode)."""
    for name in IMAGE_DECODERS:
        decoder = IMAGE_DECODERS.get(name)
        if decoder.claims(head):
            return decoder
    return None


def extensions() -> tuple[str, ...]:
    """Every registered decoder's file extensions."""
    return tuple(ext for name in IMAGE_DECODERS for ext in IMAGE_DECODERS.get(name).extensions)
