"""Comparator scores on fixed real inputs, to hold one machine's against another's (``make test-arm64``).

OpenCV's filters take other code paths on other CPUs (NEON on a Pi's
Cortex-A, SSE/AVX on x86), so the same frame could score differently there.
``python -m tests.score_cases OUT.json`` writes this machine's scores;
tests/test_similarity.py's ``test_scores_agree_with_another_machine`` computes
them again wherever it runs and compares them with the file that
``MONITOR_SCORES_FROM`` names.

The inputs: scikit-image's sample photos with seeded noise, blur, a shift, a
brightness step and a pasted object; the jp-gates walkthrough images and CDnet
highway frames from ../shared/data where it is present. Each is scored with
both methods, with and without a mask, at full size and downscaled by 2.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from monitor.similarity import METHODS, Comparator

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _photo_pairs() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    from skimage import data

    camera = np.ascontiguousarray(data.camera())
    noise = np.random.default_rng(0).normal(0.0, 12.0, camera.shape)
    yield "camera/noise", camera, np.clip(camera + noise, 0, 255).astype(np.uint8)
    yield "camera/blur", camera, cv2.GaussianBlur(camera, (5, 5), 1.2)
    yield "camera/shift", camera, np.roll(camera, 3, axis=1)
    yield "camera/brighter", camera, cv2.add(camera, 40)
    pasted = camera.copy()
    pasted[300:420, 180:330] = cv2.cvtColor(data.astronaut()[0:120, 200:350], cv2.COLOR_RGB2GRAY)
    yield "camera/pasted", camera, pasted
    coffee = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2GRAY)
    yield "coffee/contrast", coffee, cv2.convertScaleAbs(coffee, alpha=1.3, beta=-30)


def _shared_pairs() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    gates = SHARED_DATA / "seed-jp-gates"
    if gates.is_dir():
        original = cv2.imread(str(gates / "jp_gates_original.png"), cv2.IMREAD_GRAYSCALE)
        for other in ("contrast", "photoshopped"):
            yield f"jp-gates/{other}", original, cv2.imread(str(gates / f"jp_gates_{other}.png"), cv2.IMREAD_GRAYSCALE)
    highway = SHARED_DATA / "cdnet-highway" / "input"
    if highway.is_dir():
        empty = cv2.imread(str(highway / "in000470.jpg"), cv2.IMREAD_GRAYSCALE)
        for frame in (480, 760, 1230):
            yield f"highway/{frame}", empty, cv2.imread(str(highway / f"in{frame:06d}.jpg"), cv2.IMREAD_GRAYSCALE)


def _mask(shape: tuple[int, ...]) -> np.ndarray:
    height, width = shape[:2]
    mask = np.zeros((height, width), np.uint8)
    polygon = np.array([[width // 5, height // 6], [width * 4 // 5, height // 4], [width * 2 // 3, height * 5 // 6]])
    cv2.fillPoly(mask, [polygon.astype(np.int32)], 1)
    return mask.astype(bool)


def score_cases() -> dict[str, float]:
    """``{"camera/noise ssim mask x2": 0.41..., ...}`` for every input, method, mask and downscale."""
    scores: dict[str, float] = {}
    for name, reference, frame in (*_photo_pairs(), *_shared_pairs()):
        for method in METHODS:
            for masked in (False, True):
                for downscale in (1, 2):
                    comparator = Comparator(
                        reference, mask=_mask(reference.shape) if masked else None, method=method, downscale=downscale
                    )
                    key = f"{name} {method} {'mask' if masked else 'whole'} x{downscale}"
                    scores[key] = comparator.score(frame)
    return scores


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.score_cases OUT.json", file=sys.stderr)
        return 2
    record = {
        "machine": platform.machine(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "scores": score_cases(),
    }
    Path(argv[0]).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"{argv[0]}: {len(record['scores'])} scores on {record['machine']} (OpenCV {record['opencv']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
