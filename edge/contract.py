"""The preprocessing contract: the one place that says what a model's input is.

Training (``train/``), conversion (``convert/``) and the device runtime (``edge/``) all go through
these functions, and the contract's values travel inside every converted model's metadata, so a
model and the code that feeds it can never disagree about crop, colour, size, normalization or
label order.

The contract, in words: a face box from a detector is widened by ``crop_margin`` of its size on
every side and made square around its centre; with ``align = "eyes"`` and a detector that reports
eye keypoints, the frame is first rotated about the midpoint of the eyes so the line through them
is horizontal (a no-op for detectors without keypoints, such as Haar); the crop is converted to
8-bit grayscale and resized to ``size`` x ``size`` with area interpolation. The model receives the raw 0..255 pixel
values as float32 of shape ``(N, size, size, 1)``; normalization (``x * scale + offset``) is a
layer *inside* the model, so an exported model carries it and int8 input quantization maps
0..255 exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge.errors import ModelError

#: FER2013 label names in FER2013 id order (``emotion`` column 0..6).
FER2013_LABELS: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
)
#: FERPlus adds contempt after the seven FER2013 classes (id 7).
FERPLUS_LABELS: tuple[str, ...] = (*FER2013_LABELS, "contempt")

#: Label sets by name, as used by ``--labels`` in the CLIs.
LABEL_SETS: dict[str, tuple[str, ...]] = {
    "fer2013": FER2013_LABELS,
    "ferplus": FERPLUS_LABELS,
}

CONTRACT_VERSION = 1


@dataclass(frozen=True)
class PreprocessContract:
    """How a face crop becomes model input. Serialized into model metadata.

    Attributes:
        size: Side of the square model input in pixels.
        grayscale: Whether the input is single-channel grayscale (the only mode supported).
        crop_margin: Fraction of the detected box size added on every side before cropping.
        interpolation: Resize interpolation (``area`` for shrinking camera crops).
        input_range: Range of the raw values fed to the model (pixels, before normalization).
        norm_scale: Normalization multiplier applied by the model's first layer.
        norm_offset: Normalization offset applied by the model's first layer.
        normalization_in_model: True: the model normalizes; callers feed raw pixels.
        version: Contract format version.
        labels: Class names in output order.
        align: ``none`` (the crop is axis-aligned) or ``eyes`` (rotated so the eyes are level,
            see :func:`crop_face`). Metadata written before this key existed has no ``align``
            and reads as ``none``; ``none`` is left out of :meth:`to_dict`, so such models and
            their metadata stay exactly as they were.
    """

    size: int = 48
    grayscale: bool = True
    crop_margin: float = 0.15
    interpolation: str = "area"
    input_range: tuple[float, float] = (0.0, 255.0)
    norm_scale: float = 1.0 / 255.0
    norm_offset: float = 0.0
    normalization_in_model: bool = True
    version: int = CONTRACT_VERSION
    labels: tuple[str, ...] = field(default=FER2013_LABELS)
    align: str = "none"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Model input shape without the batch axis."""
        return (self.size, self.size, 1)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict (lists instead of tuples)."""
        d = asdict(self)
        d["input_range"] = list(self.input_range)
        d["labels"] = list(self.labels)
        if self.align == "none":
            del d["align"]  # the key is additive: unaligned metadata stays byte-identical
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessContract:
        """Build a contract from :meth:`to_dict` output, validating what the runtime relies on.

        Raises:
            ModelError: if a key is unknown, a value is out of range or the version is newer.
        """
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ModelError(
                f"preprocessing contract has unknown keys {sorted(unknown)}; valid keys: {sorted(known)}"
            )
        kw = dict(d)
        if "input_range" in kw:
            kw["input_range"] = tuple(float(v) for v in kw["input_range"])
        if "labels" in kw:
            kw["labels"] = tuple(str(v) for v in kw["labels"])
        c = cls(**kw)
        if c.version > CONTRACT_VERSION:
            raise ModelError(
                f"preprocessing contract version {c.version} is newer than this fer-edge "
                f"understands ({CONTRACT_VERSION}); upgrade fer-edge"
            )
        if not c.grayscale:
            raise ModelError("preprocessing contract: only grayscale models are supported")
        if not 8 <= c.size <= 512:
            raise ModelError(f"preprocessing contract: size {c.size} is outside 8..512")
        if not 0.0 <= c.crop_margin <= 1.0:
            raise ModelError(f"preprocessing contract: crop_margin {c.crop_margin} is outside 0..1")
        if c.interpolation not in _INTERPOLATIONS:
            raise ModelError(
                f"preprocessing contract: interpolation {c.interpolation!r} is not one of "
                f"{sorted(_INTERPOLATIONS)}"
            )
        if len(c.labels) < 2:
            raise ModelError("preprocessing contract: fewer than two labels")
        if c.align not in ALIGNMENTS:
            raise ModelError(
                f"preprocessing contract: align {c.align!r} is not one of {list(ALIGNMENTS)}"
            )
        return c


_INTERPOLATIONS = {"area": 3, "linear": 1, "nearest": 0}  # cv2.INTER_* values
#: Values of :attr:`PreprocessContract.align`.
ALIGNMENTS: tuple[str, ...] = ("none", "eyes")
#: Eyes closer than this (pixels) give no usable angle: the crop stays axis-aligned.
_MIN_EYE_DISTANCE = 2.0

DEFAULT_CONTRACT = PreprocessContract()


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return an 8-bit single-channel view or copy of a gray, BGR or BGRA image.

    Raises:
        ValueError: if the array is not a 2-D gray or 3-D 1/3/4-channel image.
    """
    import cv2

    if image.ndim == 2:
        gray = image
    elif image.ndim == 3 and image.shape[2] == 1:
        gray = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] == 3:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3 and image.shape[2] == 4:
        gray = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    else:
        raise ValueError(f"expected a gray, BGR or BGRA image, got array of shape {image.shape}")
    if gray.dtype != np.uint8:
        gray = np.clip(gray, 0, 255).astype(np.uint8)
    return gray


def square_box(
    bbox: Sequence[float], margin: float, frame_w: int, frame_h: int
) -> tuple[int, int, int, int]:
    """Widen ``bbox`` (x, y, w, h) by ``margin`` per side and make it square around its centre.

    The result may extend past the frame; :func:`crop_face` pads such crops by replicating the
    border so faces at the frame edge keep their geometry instead of being stretched.

    Returns:
        (x0, y0, side, side) in frame pixels (integers).
    """
    x, y, w, h = (float(v) for v in bbox)
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    s = max(1, round(side))
    x0 = round(cx - s / 2.0)
    y0 = round(cy - s / 2.0)
    return x0, y0, s, s


def eye_angle(eyes: Sequence[Sequence[float]]) -> float | None:
    """Roll of a face in degrees from its eye keypoints ``(right eye, left eye)`` (the person's
    right eye is on the image's left): positive when the eye line goes down to the image right
    in image coordinates (y down). ``None`` when the eyes are too close to tell."""
    (rx, ry), (lx, ly) = eyes[0], eyes[1]
    dx, dy = float(lx) - float(rx), float(ly) - float(ry)
    if dx * dx + dy * dy < _MIN_EYE_DISTANCE**2:
        return None
    return float(np.degrees(np.arctan2(dy, dx)))


def crop_face(
    gray: np.ndarray,
    bbox: Sequence[float],
    contract: PreprocessContract = DEFAULT_CONTRACT,
    eyes: Sequence[Sequence[float]] | None = None,
) -> np.ndarray:
    """Crop one face from a gray frame into a ``size`` x ``size`` uint8 image.

    Args:
        gray: 2-D uint8 frame.
        bbox: Detector box (x, y, w, h) in frame pixels.
        contract: The model's preprocessing contract.
        eyes: ``(right eye, left eye)`` keypoints in frame pixels, when the detector has them.
            With ``contract.align == "eyes"`` the frame is rotated about their midpoint so the
            eye line is horizontal, then the same square (its centre rotated along) is cropped;
            without keypoints, or with ``align = "none"``, the crop is axis-aligned.

    Returns:
        A ``(size, size)`` uint8 array.
    """
    import cv2

    fh, fw = gray.shape[:2]
    x0, y0, s, _ = square_box(bbox, contract.crop_margin, fw, fh)
    angle = eye_angle(eyes) if contract.align == "eyes" and eyes is not None else None
    if angle is not None:
        # One warp straight into the s x s crop (rotation about the eye midpoint, then the
        # crop's offset); the contract's resize then runs on it as on an unrotated crop.
        mx = (float(eyes[0][0]) + float(eyes[1][0])) / 2.0  # type: ignore[index]
        my = (float(eyes[0][1]) + float(eyes[1][1])) / 2.0  # type: ignore[index]
        m = cv2.getRotationMatrix2D((mx, my), angle, 1.0)
        # The box centre turns with the face, so the crop stays on it.
        cx, cy = x0 + s / 2.0, y0 + s / 2.0
        rcx = m[0, 0] * cx + m[0, 1] * cy + m[0, 2]
        rcy = m[1, 0] * cx + m[1, 1] * cy + m[1, 2]
        m[0, 2] -= rcx - s / 2.0
        m[1, 2] -= rcy - s / 2.0
        crop = cv2.warpAffine(
            gray, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return resize_to_contract(crop, contract)
    x1, y1 = x0 + s, y0 + s
    if x0 >= 0 and y0 >= 0 and x1 <= fw and y1 <= fh:
        crop = gray[y0:y1, x0:x1]
    else:
        # Replicate the border for the part of the square that lies outside the frame.
        pad_l, pad_t = max(0, -x0), max(0, -y0)
        pad_r, pad_b = max(0, x1 - fw), max(0, y1 - fh)
        inner = gray[max(0, y0) : min(fh, y1), max(0, x0) : min(fw, x1)]
        if inner.size == 0:
            raise ValueError(f"face box {tuple(bbox)} lies outside the {fw}x{fh} frame")
        crop = cv2.copyMakeBorder(inner, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    return resize_to_contract(crop, contract)


def resize_to_contract(
    gray: np.ndarray, contract: PreprocessContract = DEFAULT_CONTRACT
) -> np.ndarray:
    """Resize a gray image (any size) to the contract's square input size.

    Non-square inputs are centre-cropped to a square first, so aspect ratio is never distorted.
    """
    import cv2

    g = to_gray(gray)
    h, w = g.shape
    if h != w:
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        g = g[y0 : y0 + s, x0 : x0 + s]
    if g.shape[0] == contract.size:
        return np.ascontiguousarray(g)
    interp = _INTERPOLATIONS[contract.interpolation]
    if g.shape[0] < contract.size and contract.interpolation == "area":
        interp = 1  # INTER_AREA is meant for shrinking; upscaling uses bilinear.
    return cv2.resize(g, (contract.size, contract.size), interpolation=interp)


def to_model_input(faces: np.ndarray) -> np.ndarray:
    """Turn uint8 faces ``(N, S, S)`` or ``(S, S)`` into float32 model input ``(N, S, S, 1)``.

    Values stay in 0..255: normalization is the model's first layer (see module docstring).
    """
    a = np.asarray(faces)
    if a.ndim == 2:
        a = a[None]
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or a.shape[-1] != 1:
        raise ValueError(f"expected faces of shape (N, S, S) or (N, S, S, 1), got {a.shape}")
    return a.astype(np.float32, copy=False)
