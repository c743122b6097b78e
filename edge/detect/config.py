"""Validated ``[detector]`` tables: one pydantic class per detector type (Frigate-style plugins).

:data:`DetectorConfig` is the union of :class:`HaarConfig`, :class:`YuNetConfig` and
:class:`BlazeFaceConfig` discriminated by ``type``. The scheduling keys (motion gate, region
search, ``detect_every``) are shared by every type (:class:`DetectorCommon`); the rest belong to
one type, and each class rejects unknown keys, so a YuNet key on a Haar detector is an error that
names the keys valid for ``haar``. A table without ``type`` is the default type
(:data:`DEFAULT_DETECTOR`), or ``haar`` when it sets a key only Haar has. The main tree (``edge/config.py``) embeds the union; its error
messages are derived from it (:func:`detector_types`), never from a hand-kept list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

#: The detector a ``[detector]`` table without ``type`` gets: BlazeFace short range with the
#: motion gate (docs/PERFORMANCE.md, "Detectors on hard scenes": recall 1.000 vs 0.961 for the
#: gated Haar on the hard scene, less CPU per frame on both scenes).
DEFAULT_DETECTOR = "blazeface"


class DetectorCommon(BaseModel):
    """Keys every detector type shares: size limits and the detection schedule."""

    model_config = ConfigDict(extra="forbid")

    min_face: int = Field(
        40, ge=8, le=4096, description="Smallest face side to detect, in full-frame pixels."
    )
    detect_every: int = Field(
        # Periodic schedule only. 5 keeps detection recall when faces come and go (0.992 on
        # bench/recall_scene.py's staggered scene); 15 halves the CPU per frame but reports a
        # newly entering face up to 14 frames late. The motion gate (the default) beats both.
        5,
        ge=1,
        le=1000,
        description="Periodic schedule (motion_gate = false): while faces are followed, "
        "full-frame detection runs every N frames (and on the frame after a followed face was "
        "lost); in between, faces are re-detected only inside an enlarged region around each "
        "track. With no face followed every frame is a full detection. A new face next to a "
        "followed one waits up to N frames (1: always full; see docs/PERFORMANCE.md for the "
        "cost of each choice). With motion_gate = true it only sets the budget of "
        "motion-triggered searches while faces are followed: at most one frame's area per N "
        "frames on average.",
    )
    motion_gate: bool = Field(
        # On by default: on bench/recall_scene.py's realistic scenes (noise, exposure drift,
        # a lamp step, a pan) it keeps or beats the recall of detect_every = 5 with new faces
        # found in the frame they appear or walk in, at 3.1-3.2 ms/frame on the benchmark
        # video (7.6 ms for detect_every = 5, same session), and an empty room costs
        # ~1.1 ms/frame instead of ~11.
        True,
        description="Run full-frame detection only where and when the picture changed: a cheap "
        "motion detector (~0.15 ms) compares each frame with the previous one outside the "
        "followed faces, and only the moving regions are searched for new faces (a full pass "
        "when they cover most of the frame), plus a full pass every 'full_every' frames. "
        "false: the periodic schedule of 'detect_every' (a full pass on every frame while no "
        "face is followed). Works with every detector type. See docs/PERFORMANCE.md.",
    )
    full_every: int = Field(
        30,
        ge=1,
        le=10000,
        description="motion_gate: a full-frame pass at least every N frames even without "
        "motion (a still face whose track was lost, a face turned towards the camera slowly); "
        "replaces the periodic pass of detect_every.",
    )
    motion_width: int = Field(
        160,
        ge=32,
        le=1024,
        description="motion_gate: width of the downscale the motion detector works on "
        "(rounded down to a multiple of 4); one pixel there is its spatial tolerance for "
        "camera shake (4 px at 640 wide).",
    )
    motion_threshold: int = Field(
        16,
        ge=2,
        le=255,
        description="motion_gate: gray-level change, after brightness normalisation, for a "
        "pixel of the downscale to count as changed (sensor noise there is ~1-2 levels).",
    )
    motion_min_area: float = Field(
        0.002,
        ge=0.0,
        le=0.5,
        description="motion_gate: fraction of the frame that must change (in 16x16-pixel "
        "blocks at 640 wide, outside the followed faces) before the changed regions are "
        "searched for faces.",
    )
    motion_full_area: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="motion_gate: when the changed regions, expanded to fit a face, cover this "
        "fraction of the frame, one full-frame pass runs instead of searching them.",
    )
    still_frames: int = Field(
        # 8: on bench/hard_scenes.py's hard scene 2148 -> 604 detector runs and 4.5 -> 2.1 ms
        # per frame with the same recall, boxes and end-to-end accuracy (docs/PERFORMANCE.md).
        8,
        ge=0,
        le=1000,
        description="motion_gate: a followed face whose search region has not changed since "
        "it was last detected (same rule as the motion detector, compared with that frame) "
        "keeps its box without a search, and is not classified again (its track keeps its "
        "belief), for up to N frames in a row; then it is searched again. A face that moves, turns or changes expression "
        "changes its region and is searched at once (0: search every frame).",
    )
    roi_scale: float = Field(
        1.6, ge=1.2, le=6.0, description="Re-detection region side as a multiple of the face box."
    )
    num_threads: int = Field(
        2,
        ge=0,
        le=64,
        description="OpenCV worker threads for detection and resizing (cv2.setNumThreads; 0: "
        "OpenCV's default, all cores). 2 on a 4-core Pi leaves a core each for capture and "
        "the MQTT client while spreading a full-frame pass over two cores.",
    )
    align: Literal["model", "eyes", "none"] = Field(
        # eyes: with BlazeFace's crop_scale the reported emotion was right for 19 vs 15 of 28
        # faces (hard scene), 62 vs 61 of 90 (hard-long), 16 vs 15 of 22 (posed) against
        # 'none' (the bundled models' contract), at +0.0-0.1 ms per frame
        # (docs/PERFORMANCE.md, bench/hard_scenes.py).
        "eyes",
        description="Rotate each face crop about the eye midpoint so the eyes are level before "
        "classifying: 'model' does what the model's preprocessing contract says (its 'align' "
        "key; models without the key: none), 'eyes' or 'none' override it. Needs a detector "
        "with eye keypoints (blazeface, yunet); a no-op with haar.",
    )


class _Downscaled(DetectorCommon):
    """Keys of the OpenCV detectors, which run on a downscaled gray frame."""

    detect_width: int = Field(
        320,
        ge=0,
        le=4096,
        description="Frames wider than this are downscaled to this width for detection "
        "(0: never downscale). Smaller is faster; too small misses small faces.",
    )
    roi_face_px: int = Field(
        32,
        ge=0,
        le=512,
        description="Region search: resize the region so the followed face is about this many "
        "pixels wide (0: use the full-frame downscale). Smaller is cheaper; below 24 the Haar "
        "window no longer fits.",
    )


class HaarConfig(_Downscaled):
    """OpenCV's bundled frontal-face Haar cascade (no extra files, no landmarks)."""

    type: Literal["haar"] = Field(
        "haar", description="Detector type: OpenCV's Haar cascade (frontal faces, no keypoints)."
    )
    cascade: str = Field(
        "haarcascade_frontalface_default.xml",
        description="Cascade file name in OpenCV's data folder, or a path.",
    )
    scale_factor: float = Field(
        1.1, gt=1.0, le=2.0, description="Pyramid step (smaller: slower, more recall)."
    )
    min_neighbors: int = Field(
        5, ge=0, le=50, description="Overlapping hits required (more: fewer false faces)."
    )
    equalize: bool = Field(False, description="Histogram-equalize before detecting.")


class YuNetConfig(_Downscaled):
    """cv2.FaceDetectorYN with a user-supplied ONNX file (not shipped)."""

    type: Literal["yunet"] = Field(description="Detector type: OpenCV's YuNet (ONNX).")
    model: Path = Field(
        description="Path of the YuNet ONNX file (face_detection_yunet_2023mar.onnx from the "
        "OpenCV model zoo; not shipped)."
    )
    score_threshold: float = Field(0.7, ge=0, le=1, description="Minimum face score.")
    nms_threshold: float = Field(0.3, ge=0, le=1, description="NMS IoU threshold.")


class BlazeFaceConfig(DetectorCommon):
    """MediaPipe's BlazeFace (bundled TFLite models) with six keypoints per face."""

    type: Literal["blazeface"] = Field(
        "blazeface",
        description="Detector type: BlazeFace on the TFLite interpreter (bundled, Apache-2.0; "
        "the default).",
    )
    variant: Literal["short", "full"] = Field(
        "short",
        description="short: 128 px input, faces within ~2 m of the camera (about 1/8 of the "
        "frame or larger in a full pass); full: 192 px input, faces up to ~5 m, ~3x the cost.",
    )
    model: Path | None = Field(
        None,
        description="Model file (default: the bundled file of the variant). Its sha256 must "
        "match the bundled file's unless 'sha256' says otherwise.",
    )
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Expected sha256 of 'model' (default: the bundled file's); a file with "
        "another checksum is refused.",
    )
    score_threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Minimum face score (default 0.6; MediaPipe uses 0.5 for short).",
    )
    nms_threshold: float = Field(
        0.3, gt=0, le=1, description="Weighted NMS: candidates overlapping by more are merged."
    )
    tiles: int = Field(
        2,
        ge=1,
        le=4,
        description="A full-frame pass also searches an N x N grid of overlapping tiles (each "
        "1.5/N of the frame), where small faces are N/1.5 times larger in the model input "
        "(1: the whole frame only). 2 costs 5 model runs per full pass instead of 1; with the "
        "motion gate that is one pass per full_every frames.",
    )
    max_face: float = Field(
        1.0,
        gt=0.1,
        le=1.0,
        description="Drop boxes taller than this fraction of the frame (1: none). At the "
        "whole-frame scale a textured wall can pass for a face of 80-90 % of the frame height; "
        "0.75 removed most such boxes on the hard-long scene but cost some recall; a box of "
        "half the frame height or more must score 0.75 anyway, which removed them all "
        "without (docs/PERFORMANCE.md).",
    )
    interpreter_threads: int = Field(
        1, ge=1, le=64, description="TFLite interpreter threads for the detector."
    )


#: Keys only Haar has: a table without ``type`` that sets one was written for Haar (the only
#: detector that needed no ``type`` before BlazeFace became the default) and stays Haar.
_HAAR_ONLY = frozenset(HaarConfig.model_fields) - frozenset(BlazeFaceConfig.model_fields) - {"type"}


def _default_type(value: Any) -> Any:
    """A ``[detector]`` table without ``type`` is the default detector, or Haar when it sets a
    Haar-only key (``detect_width``, ``cascade``, ...), so configs written before the default
    changed keep the detector they were written for."""
    if isinstance(value, dict) and "type" not in value:
        kind = "haar" if _HAAR_ONLY & set(value) else DEFAULT_DETECTOR
        return {"type": kind, **value}
    return value


#: One ``[detector]`` table: the class is chosen by ``type``.
_DetectorUnion = Annotated[HaarConfig | YuNetConfig | BlazeFaceConfig, Field(discriminator="type")]
DetectorConfig = Annotated[_DetectorUnion, BeforeValidator(_default_type)]

_ADAPTER: TypeAdapter[Any] = TypeAdapter(DetectorConfig)


def detector_types() -> dict[str, type[BaseModel]]:
    """``type`` value -> config class, read off :data:`DetectorConfig` itself."""
    from edge.config import union_members

    return union_members(DetectorConfig)


def detector_config(data: dict[str, Any] | None = None, **keys: Any) -> Any:
    """Validate one ``[detector]`` table (``type`` defaults to :data:`DEFAULT_DETECTOR`).

    Raises:
        pydantic.ValidationError: as for the whole tree (``edge.config`` turns it into a
            :class:`~edge.errors.ConfigError`).
    """
    return _ADAPTER.validate_python({**(data or {}), **keys})


def default_detector_config() -> Any:
    """The ``[detector]`` table of a config that has none."""
    return detector_config()
