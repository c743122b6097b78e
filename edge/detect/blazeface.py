"""BlazeFace face detector (MediaPipe's short- and full-range TFLite models) on the same TFLite
interpreter chain as the classifier (ai-edge-litert, then tflite-runtime): no new dependency.

The two models ship inside the package (``edge/detect/models/blazeface/``, Apache-2.0, see the
``NOTICE`` there); their sha256 is checked at load. A model file holds only the network: per
anchor it outputs 16 regressors (box centre offset, width, height, then six keypoints) and one
raw score. Everything around it is written here:

* **Anchors** (SSD layout as MediaPipe lays it out for these models, with a fixed anchor size
  of 1): for each stride the feature map is ``ceil(input / stride)`` cells square; consecutive
  layers with the same stride share one map, and every cell gets, per such layer, one anchor for
  each aspect ratio (1.0) plus one interpolated anchor when ``interpolated_scale_aspect_ratio``
  is set. All anchors of a cell are at its centre ``((x + 0.5) / fw, (y + 0.5) / fh)``, so only
  their count per cell matters. Short range: 128 px input, strides 8, 16, 16, 16, two anchors
  per layer: 16x16x2 + 8x8x6 = 896. Full range: 192 px input, one stride-4 layer, one anchor per
  cell: 48x48 = 2304.
* **Decoding**: ``x = raw / input_size + anchor`` for centres and keypoints, ``w = raw /
  input_size`` for sizes (normalised to the square input); the score is ``sigmoid(clip(raw,
  -100, 100))``.
* **Letterbox**: the (gray) image is scaled to fit the square input keeping its aspect ratio,
  centred, the rest black, replicated to three channels and mapped to [-1, 1] as MediaPipe
  feeds it; boxes and keypoints are mapped back through the same scale and offset.
* **Weighted NMS** (MediaPipe's "blending" suppression): candidates in descending score; each
  takes every remaining candidate overlapping it by IoU > ``nms_threshold`` and becomes their
  score-weighted mean box and keypoints, with the top score.

fer-edge works on gray frames (a Pi's lores Y plane is gray for free), so the three input
channels are the same gray image; the models detect faces in gray images as well (see the tests).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.detect.base import Detection, FaceDetector
from edge.errors import DetectorError, ModelError
from edge.track import iou

log = logging.getLogger(__name__)

#: Folder of the bundled models, relative to the ``edge`` package.
MODELS_RESOURCE = "detect/models/blazeface"


@dataclass(frozen=True)
class Variant:
    """One BlazeFace model and the anchor layout it was trained with.

    Attributes:
        name: ``short`` or ``full``.
        file: Bundled file name.
        sha256: Checksum of the bundled file (checked at load).
        input_size: Side of the square RGB input.
        strides: Stride of each anchor layer.
        interpolated: Whether every layer adds an interpolated-scale anchor per cell.
        score_threshold: Default minimum score (MediaPipe uses 0.5 for short, 0.6 for full;
            0.6 for both here: on gray frames the bundled sample's dark space-suit collar
            scores 0.51-0.57 with the short model, its face 0.9 and more; CK+48 faces of
            110 px in a full 640x480 pass score 0.44-0.7, of 180 px and more 0.84-0.93).
        box_shift: The reported box's centre is moved up by this fraction of its side (see
            :func:`BlazeFaceDetector._detect`).
        max_face: Largest face side the model finds reliably, as a fraction of its input:
            a region search around a followed face is widened so the face is at most this
            large in it (the full-range model, made for distant faces, misses a face that fills
            the 1.6x region; measured on bench/hard_scenes.py).
    """

    name: str
    file: str
    sha256: str
    input_size: int
    strides: tuple[int, ...]
    interpolated: bool
    score_threshold: float
    box_shift: float
    max_face: float

    @property
    def num_anchors(self) -> int:
        """Anchors (and output rows) of the model."""
        return len(ssd_anchors(self.input_size, self.strides, self.interpolated))


VARIANTS: dict[str, Variant] = {
    "short": Variant(
        "short",
        "face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        128,
        (8, 16, 16, 16),
        True,
        0.6,
        0.10,
        1.0,
    ),
    "full": Variant(
        "full",
        "face_detection_full_range_sparse.tflite",
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        192,
        (4,),
        False,
        0.6,
        0.05,
        0.35,
    ),
}

#: Keypoints per detection and values per anchor (4 box values + 2 per keypoint).
NUM_KEYPOINTS = 6
NUM_COORDS = 4 + 2 * NUM_KEYPOINTS


def ssd_anchors(input_size: int, strides: tuple[int, ...], interpolated: bool) -> np.ndarray:
    """Anchor centres ``(N, 2)`` as ``(x, y)`` in 0..1 of the square input (see module doc).

    Args:
        input_size: Side of the square model input.
        strides: Stride of each layer; consecutive equal strides share one feature map.
        interpolated: One extra anchor per layer and cell (MediaPipe's
            ``interpolated_scale_aspect_ratio = 1.0``).
    """
    per_layer = 2 if interpolated else 1  # aspect ratio 1.0 (+ the interpolated scale)
    out: list[np.ndarray] = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        side = math.ceil(input_size / strides[i])
        c = (np.arange(side, dtype=np.float32) + 0.5) / side
        xs, ys = np.meshgrid(c, c)  # row-major: y outer, x inner, as the model's output rows
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, per_layer * (j - i), axis=0))
        i = j
    return np.concatenate(out, axis=0)


def bundled_model_path(variant: str) -> Path:
    """Path of the bundled model file of a variant (``short`` or ``full``)."""
    from importlib import resources

    return Path(str(resources.files("edge").joinpath(MODELS_RESOURCE, VARIANTS[variant].file)))


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """Blend overlapping candidates (MediaPipe's weighted suppression).

    Args:
        boxes: ``(N, 4)`` as ``x0, y0, x1, y1``.
        scores: ``(N,)``.
        keypoints: ``(N, K, 2)``.
        iou_threshold: Candidates overlapping a better one by more than this are merged into it.

    Returns:
        ``(box x0 y0 x1 y1, score, keypoints (K, 2))`` per face, best first.
    """
    order = np.argsort(-scores, kind="stable")
    remaining = order
    out = []
    while remaining.size:
        top = remaining[0]
        b = boxes[remaining]
        ix0 = np.maximum(b[:, 0], boxes[top, 0])
        iy0 = np.maximum(b[:, 1], boxes[top, 1])
        ix1 = np.minimum(b[:, 2], boxes[top, 2])
        iy1 = np.minimum(b[:, 3], boxes[top, 3])
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        top_area = areas[0]
        iou = inter / np.maximum(areas + top_area - inter, 1e-12)
        group = iou > iou_threshold
        group[0] = True
        members = remaining[group]
        w = scores[members]
        wsum = float(w.sum())
        box = (boxes[members] * w[:, None]).sum(axis=0) / wsum
        kps = (keypoints[members] * w[:, None, None]).sum(axis=0) / wsum
        out.append((box, float(scores[top]), kps))
        remaining = remaining[~group]
    return out


class BlazeFaceDetector(FaceDetector):
    """BlazeFace on the TFLite interpreter, with six keypoints per face.

    The region given by :meth:`~edge.detect.base.FaceDetector.detect` (the whole frame, a
    followed face's surroundings, or a moving region) is letterboxed straight to the model's
    square input, so there is no separate downscale step (``detect_width`` and ``roi_face_px``
    do not apply): a full 640x480 frame becomes 128x96 (short) or 192x144 (full) pixels of
    picture. Faces smaller than about 1/8 of the frame's long side are then too small for the
    short-range model in a full pass; the motion gate's region searches (a region a few faces
    wide) and the region search around a followed face see them larger.

    Args:
        variant: ``short`` (128 px input, faces within ~2 m) or ``full`` (192 px, ~5 m).
        model: Model file (default: the bundled file of the variant).
        sha256: Expected sha256 of ``model`` (default: the bundled file's). A file with another
            checksum is refused: a corrupt or swapped model must not run silently.
        min_face: Smallest face side to report, in full-frame pixels.
        score_threshold: Minimum face score (default: 0.6, see :class:`Variant`).
        nms_threshold: IoU above which overlapping candidates are merged (weighted NMS).
        box_scale: Side of the reported box as a multiple of BlazeFace's own box, so the crop
            the classifier gets frames the face as a Haar box does (see :data:`BOX_SCALE`).
        tiles: A full-frame pass also searches an ``tiles`` x ``tiles`` grid of overlapping
            tiles (each ``1.5 / tiles`` of the frame's width and height, so any face up to
            half the frame fits whole in one), where faces are ``tiles / 1.5`` times larger
            in the model input; 1: the whole frame only. A region search (around a followed
            face, or where the picture moved) never tiles.
        max_face: Boxes taller than this fraction of the frame are dropped (1: none). At the
            whole-frame scale the short-range model can take a textured wall for a face of
            80-90 % of the frame height (score 0.65 on bench/hard_scenes.py's hard-long scene).
            Measured there: 0.75 cuts false positives from 12.2 to 3.9 per 1000 frames but
            also recall from 1.000 to 0.989, so it is off by default; the score rule for
            large boxes (:data:`LARGE_FACE`) removes all of them without losing recall.
        num_threads: Interpreter threads.
        runtime: Force a TFLite runtime (default: ai-edge-litert, then tflite-runtime).

    Raises:
        DetectorError: one line naming the file and what was expected when the model is
            missing, unreadable, has another checksum, cannot be loaded or has other tensors.
    """

    type = "blazeface"
    full_pass_finds_all = False
    #: The classifier's crop is cut around 0.85 of the box: with the whole box (widened by the
    #: contract's crop_margin) it was 1.13x (median) the original crop of FER2013 PublicTest
    #: faces pasted into frames and 1.09x that of CK+48 faces, and a tighter crop classified
    #: better: 579 FER2013 PublicTest faces (90-240 px on textured rooms) 64.9 % at 1.0,
    #: 68.4 % at 0.85 (65.6-66.7 % at 0.75, 0.8, 0.88); 309 CK+48 faces (also rolled
    #: -20..+20 degrees) 68.3 % at 1.0, 73.1 % at 0.85 (70.2-75.1 %); the original 48x48
    #: crops themselves 67.4 % and 73.8 % (docs/PERFORMANCE.md). The box itself (events,
    #: tracking, region searches) keeps framing the head as a Haar box does.
    crop_scale = 0.85

    def __init__(
        self,
        variant: str = "short",
        *,
        model: str | Path | None = None,
        sha256: str | None = None,
        min_face: int = 40,
        score_threshold: float | None = None,
        nms_threshold: float = 0.3,
        box_scale: float | None = None,
        tiles: int = 1,
        max_face: float = 1.0,
        num_threads: int = 1,
        runtime: str | None = None,
    ) -> None:
        # No pre-downscale and no face-scale region resize: the letterbox does both.
        super().__init__(detect_width=0, min_face=min_face, roi_face_px=0)
        if variant not in VARIANTS:
            raise DetectorError(
                f"BlazeFace variant {variant!r} is not one of {', '.join(VARIANTS)}"
            )
        v = VARIANTS[variant]
        self.variant = v
        path = Path(model).expanduser() if model is not None else bundled_model_path(variant)
        expected = (sha256 or v.sha256).lower()
        self._interp = _load_checked(path, expected, v, num_threads, runtime)
        self.path = path
        self.score_threshold = v.score_threshold if score_threshold is None else score_threshold
        self.nms_threshold = nms_threshold
        self.box_scale = BOX_SCALE if box_scale is None else box_scale
        self.tiles = max(1, int(tiles))
        self.max_face = max_face
        # Raw-score threshold: sigmoid(x) >= t  <=>  x >= logit(t); compared before any exp.
        t = min(max(self.score_threshold, 1e-6), 1 - 1e-6)
        self._raw_threshold = math.log(t / (1.0 - t))
        s = v.input_size
        self._anchors = ssd_anchors(s, v.strides, v.interpolated)
        ins = self._interp.get_input_details()[0]
        outs = self._interp.get_output_details()
        self._in_index = int(ins["index"])
        self._reg_index = next(int(o["index"]) for o in outs if o["shape"][-1] == NUM_COORDS)
        self._score_index = next(int(o["index"]) for o in outs if o["shape"][-1] == 1)
        self._input = np.zeros((1, s, s, 3), np.float32)
        self._canvas = np.zeros((s, s), np.uint8)  # letterboxed gray, black borders
        self._norm = np.zeros((s, s), np.float32)
        #: Model invocations (full passes and region searches), for benchmarks.
        self.invocations = 0
        log.info("loaded BlazeFace %s (%s) from %s", v.name, v.file, path)

    @classmethod
    def from_config(cls, cfg: Any) -> BlazeFaceDetector:
        """Build from a :class:`~edge.detect.config.BlazeFaceConfig`."""
        return cls(
            cfg.variant,
            model=cfg.model,
            sha256=cfg.sha256,
            min_face=cfg.min_face,
            score_threshold=cfg.score_threshold,
            nms_threshold=cfg.nms_threshold,
            tiles=cfg.tiles,
            max_face=cfg.max_face,
            num_threads=cfg.interpreter_threads,
        )

    def scale_for(self, frame_width: int) -> float:
        """Always 1: the letterbox to the model input is the only resize."""
        return 1.0

    def detect(
        self,
        gray: np.ndarray,
        roi: tuple[int, int, int, int] | None = None,
        face_side: float | None = None,
        *,
        roi_face_px: int | None = None,
    ) -> list[Detection]:
        """As :meth:`FaceDetector.detect`; a full-frame pass also searches the tiles, a region
        around a followed face is widened to the variant's :attr:`Variant.max_face`."""
        if roi is not None and face_side and self.variant.max_face < 1.0:
            x, y, w, h = roi
            need = face_side / self.variant.max_face
            if max(w, h) < need:
                fh, fw = gray.shape[:2]
                cx, cy = x + w / 2.0, y + h / 2.0
                x0, y0 = max(0, round(cx - need / 2)), max(0, round(cy - need / 2))
                roi = (
                    x0,
                    y0,
                    min(fw, round(cx + need / 2)) - x0,
                    min(fh, round(cy + need / 2)) - y0,
                )
        h, w = gray.shape[:2]
        found = [
            d
            for d in super().detect(gray, roi, face_side, roi_face_px=roi_face_px)
            if self._plausible(d, h)
        ]
        if roi is not None or self.tiles < 2:
            return found
        tw, th = min(w, round(1.5 * w / self.tiles)), min(h, round(1.5 * h / self.tiles))
        for i in range(self.tiles):
            for j in range(self.tiles):
                x = round(i * (w - tw) / (self.tiles - 1))
                y = round(j * (h - th) / (self.tiles - 1))
                for d in super().detect(gray, (x, y, tw, th)):
                    if not self._plausible(d, h):
                        continue
                    # The same face seen whole in the frame and in a tile, or in two tiles:
                    # keep the higher-scoring box.
                    same = [k for k, f in enumerate(found) if iou(f.bbox, d.bbox) > 0.3]
                    if not same:
                        found.append(d)
                    elif d.score > found[same[0]].score:
                        found[same[0]] = d
        return found

    def _plausible(self, d: Detection, frame_h: int) -> bool:
        """Not taller than ``max_face``, and a box of at least :data:`LARGE_FACE` of the
        frame's height scores at least :data:`LARGE_FACE_SCORE`."""
        if d.h > self.max_face * frame_h:
            return False
        return d.h < LARGE_FACE * frame_h or d.score >= LARGE_FACE_SCORE

    def _detect(self, small: np.ndarray, min_side: int, max_side: int = 0) -> list[Detection]:
        import cv2

        h, w = small.shape[:2]
        s = self.variant.input_size
        scale = s / float(max(h, w))
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        px, py = (s - rw) // 2, (s - rh) // 2
        canvas = self._canvas
        if rw != s or rh != s:
            canvas.fill(0)
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        canvas[py : py + rh, px : px + rw] = cv2.resize(small, (rw, rh), interpolation=interp)
        # [-1, 1] as MediaPipe feeds it; the same gray in R, G and B.
        np.multiply(canvas, 1.0 / 127.5, out=self._norm, casting="unsafe")
        self._norm -= 1.0
        self._input[0] = self._norm[:, :, None]
        self._interp.set_tensor(self._in_index, self._input)
        self._interp.invoke()
        self.invocations += 1
        raw_scores = self._interp.get_tensor(self._score_index).reshape(-1)
        keep = np.nonzero(raw_scores >= self._raw_threshold)[0]
        if keep.size == 0:
            return []
        reg = self._interp.get_tensor(self._reg_index).reshape(-1, NUM_COORDS)[keep]
        anchors = self._anchors[keep]
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[keep], -100.0, 100.0)))
        # Normalised to the square input, then to ``small``'s pixels.
        cx = reg[:, 0] / s + anchors[:, 0]
        cy = reg[:, 1] / s + anchors[:, 1]
        bw = reg[:, 2] / s
        bh = reg[:, 3] / s
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        kps = reg[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) / s + anchors[:, None, :]
        inv = 1.0 / scale
        out = []
        for box, score, kp in weighted_nms(boxes, scores, kps, self.nms_threshold):
            x0, y0, x1, y1 = ((box * s) - (px, py, px, py)) * inv
            own = max(x1 - x0, y1 - y0)
            side = own * self.box_scale
            if side < min_side or (max_side and side > max_side):
                continue
            # BlazeFace's box sits lower on the face than a Haar box (it starts at the brows):
            # move it up so the classifier's crop frames the face as it was tuned on Haar.
            bcx, bcy = (x0 + x1) / 2.0, (y0 + y1) / 2.0 - self.variant.box_shift * own
            k = (kp * s - (px, py)) * inv
            out.append(
                Detection(
                    float(bcx - side / 2),
                    float(bcy - side / 2),
                    float(side),
                    float(side),
                    min(1.0, float(score)),
                    tuple((float(a), float(b)) for a, b in k),
                )
            )
        return out


#: A box at least this fraction of the frame's height must score :data:`LARGE_FACE_SCORE`.
#: A real face that large fills the model input and scores high: CK+48 faces pasted at 200-470
#: px (upscaled from 48 px, so blurrier than a real close face) on a plain and a textured
#: background scored 0.83-0.95 in a full pass (50 each), while the short-range model's false
#: positives on bench/hard_scenes.py's hard-long scene, a textured wall taken for a face of
#: 0.5-0.97 of the frame height, score 0.60-0.69. Smaller boxes keep ``score_threshold``: a
#: small real face in a full pass scores 0.44-0.7.
LARGE_FACE = 0.5
#: Minimum score of a box of at least :data:`LARGE_FACE` of the frame's height.
LARGE_FACE_SCORE = 0.75

#: Side of the reported square box as a multiple of BlazeFace's own larger side (scaled about
#: its centre after ``Variant.box_shift``). Measured against OpenCV's Haar box on the same
#: faces: 1.07x (short) and 1.18x (full) the Haar side on the bundled astronaut sample, 0.86x /
#: 0.92x on FER2013 crops pasted into a frame (a tight crop has no forehead or ears to frame);
#: 1.0 keeps the box between the two. The centre sat 0.11 (short) and 0.055 (full) of the side
#: below Haar's in both: that is ``Variant.box_shift``. The classifier's crop is tighter
#: (:attr:`BlazeFaceDetector.crop_scale`).
BOX_SCALE = 1.0


def _load_checked(
    path: Path, expected_sha256: str, v: Variant, threads: int, runtime: str | None
) -> Any:
    """Read, checksum, load and shape-check a BlazeFace model; every failure is one line."""
    from edge.classify.interpreter import load_interpreter_class

    what = f"BlazeFace {v.name}-range model {path}"
    if not path.is_file():
        raise DetectorError(f"{what} not found (expected {v.file}, sha256 {v.sha256[:16]}...)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DetectorError(f"{what} cannot be read: {e.strerror}") from None
    got = hashlib.sha256(data).hexdigest()
    if got != expected_sha256:
        raise DetectorError(
            f"{what} has sha256 {got[:16]}..., expected {expected_sha256[:16]}... (corrupt or "
            "another file; set detector.sha256 to run a different BlazeFace file)"
        )
    try:
        cls, _ = load_interpreter_class(runtime)
    except ModelError as e:
        raise DetectorError(f"{what}: {e}") from None
    try:
        interp = cls(model_content=data, num_threads=threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DetectorError(f"{what} is not a loadable TFLite model: {first}") from None
    s, n = v.input_size, v.num_anchors
    ins = interp.get_input_details()
    outs = interp.get_output_details()
    got_in = [[int(d) for d in t["shape"]] for t in ins]
    got_out = sorted(([int(d) for d in t["shape"]] for t in outs), key=lambda x: -x[-1])
    want_in = [[1, s, s, 3]]
    want_out = [[1, n, NUM_COORDS], [1, n, 1]]
    if got_in != want_in or got_out != want_out or np.dtype(ins[0]["dtype"]) != np.float32:
        raise DetectorError(
            f"{what} has input {got_in} and outputs {got_out}; expected float32 input "
            f"{want_in[0]} and outputs {want_out[0]} and {want_out[1]}"
        )
    return interp
