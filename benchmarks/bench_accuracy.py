"""Frame-level precision, recall and F1 on real data: CDnet 2014 "highway" (issue 3).

A polygon on the road is watched (``common.HIGHWAY_POLYGON``); the reference
is the per-pixel median of every third frame of 1-469 (frames without ground
truth, never scored). A frame of 470-1700 is *changed* when at least 50
ground-truth "moving object" pixels (255) fall inside the polygon.

The SSIM threshold is chosen by a sweep over frames 470-1000 only, then the
real ``monitor replay`` runs with it and its ``below`` column is scored on
470-1000 (where it was chosen), 1001-1700 (unseen) and 470-1700. Beside it:
mean squared error over the same polygon, with a threshold chosen the same
way and with its best threshold on all frames (an oracle, flattering MSE),
SSIM's own oracle threshold, ``ssim-structure``, and ``detection.downscale: 2``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import (
    EVALUATED,
    HIGHWAY,
    HIGHWAY_POLYGON,
    highway_frame_path,
    highway_mask,
    highway_reference,
    highway_truth,
    missing,
    read_luma,
    replay,
    write_config,
)

from monitor.similarity import mse

CHOOSE = range(470, 1001)  # the threshold is chosen on these frames...
HELD_OUT = range(1001, 1701)  # ...and tested on these


@dataclass(frozen=True)
class Counts:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0


def counts(predicted: Mapping[int, bool], truth: Mapping[int, bool], frames: Iterable[int]) -> Counts:
    tp = fp = fn = 0
    for n in frames:
        tp += predicted[n] and truth[n]
        fp += predicted[n] and not truth[n]
        fn += truth[n] and not predicted[n]
    return Counts(tp, fp, fn)


def sweep(values: Mapping[int, float], truth: Mapping[int, bool], frames: range, *, low_is_change: bool) -> float:
    """The threshold with the best F1 on ``frames``: the middle of the best gap between sorted values."""
    ordered = np.unique([values[n] for n in frames])
    candidates = np.concatenate([[ordered[0] - 1e-6], (ordered[1:] + ordered[:-1]) / 2, [ordered[-1] + 1e-6]])
    f1s = [counts(predict(values, t, low_is_change=low_is_change), truth, frames).f1 for t in candidates]
    best = np.flatnonzero(np.isclose(f1s, max(f1s)))
    return float(candidates[best[len(best) // 2]])  # ties: the middle one, away from the edges of the plateau


def predict(values: Mapping[int, float], threshold: float, *, low_is_change: bool) -> dict[int, bool]:
    if low_is_change:
        return {n: v < threshold for n, v in values.items()}
    return {n: v > threshold for n, v in values.items()}


def replay_highway(
    folder: Path, reference: np.ndarray, **detection: object
) -> tuple[dict[int, float], dict[int, bool]]:
    """Scores and ``below`` of the real ``monitor replay``, by CDnet frame number (1-based)."""
    folder.mkdir()
    source = {"kind": "images", "device": str(HIGHWAY / "input"), "width": 320, "height": 240}
    config = write_config(
        folder, reference=reference, source=source, mask={"include": [HIGHWAY_POLYGON]}, detection=detection
    )
    rows = replay(config, HIGHWAY / "input", folder / "scores.csv")
    if len(rows) != 1700:
        raise RuntimeError(f"monitor replay scored {len(rows)} frames, expected 1700")
    scores = {int(r["frame"]) + 1: float(r["score"]) for r in rows}
    below = {int(r["frame"]) + 1: r["below"] == "1" for r in rows}
    return scores, below


def detection(threshold: float, **more: object) -> dict[str, object]:
    return {"threshold": round(threshold, 5), "clear_threshold": min(round(threshold, 5) + 0.005, 1.0), **more}


def main() -> list[dict[str, object]]:
    if missing(HIGHWAY):
        return []
    mask = highway_mask()
    truth = highway_truth(mask)
    reference = highway_reference()
    positives = sum(truth.values())
    print(
        f"highway: polygon {HIGHWAY_POLYGON} ({int(mask.sum())} pixels), reference = median of frames 1-469 "
        f"(every 3rd); {positives} of {len(truth)} evaluated frames changed (>= 50 object pixels inside)"
    )
    rows: list[dict[str, object]] = []

    def report(method: str, threshold: float, how: str, predicted: Mapping[int, bool], frames: range) -> None:
        c = counts(predicted, truth, frames)
        span = f"{frames.start}-{frames.stop - 1}"
        print(
            f"{method:34} {threshold:10.4f} {how:22} {span:>9} {c.precision:6.3f} {c.recall:6.3f} {c.f1:6.3f}"
            f" {c.tp:5d} {c.fp:4d} {c.fn:4d}"
        )
        rows.append(
            {
                "method": method,
                "threshold": threshold,
                "chosen": how,
                "frames": span,
                "precision": c.precision,
                "recall": c.recall,
                "f1": c.f1,
            }
        )

    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        work = Path(tmp)
        # Pass 1: the scores, to choose the threshold on 470-1000 only.
        scores, _ = replay_highway(work / "sweep", reference, **detection(0.9))
        threshold = round(sweep(scores, truth, CHOOSE, low_is_change=True), 4)
        # Pass 2: the daemon itself decides `below` with that threshold.
        scores, below = replay_highway(work / "chosen", reference, **detection(threshold))
        assert below == predict(scores, threshold, low_is_change=True)
        structure, _ = replay_highway(work / "structure", reference, **detection(0.9, method="ssim-structure"))
        small, small_below = replay_highway(work / "downscale2", reference, **detection(threshold, downscale=2))

    errors = {n: mse(reference, read_luma(highway_frame_path(n)), mask) for n in EVALUATED}

    print(
        f"\n{'method':34} {'threshold':>10} {'chosen on':22} {'frames':>9} {'prec':>6} {'recall':>6} {'F1':>6}"
        f" {'tp':>5} {'fp':>4} {'fn':>4}"
    )
    for frames in (CHOOSE, HELD_OUT, EVALUATED):
        report("SSIM, monitor replay `below`", threshold, "sweep 470-1000", below, frames)
    for frames in (HELD_OUT, EVALUATED):
        report("SSIM, downscale 2, `below`", threshold, "same as downscale 1", small_below, frames)
    for name, values, low_is_change in (
        ("SSIM", scores, True),
        ("MSE over the polygon", errors, False),
        ("ssim-structure", structure, True),
        ("SSIM, downscale 2", small, True),
    ):
        for chosen_on, frames in ((CHOOSE, HELD_OUT), (EVALUATED, EVALUATED)):
            chosen = sweep(values, truth, chosen_on, low_is_change=low_is_change)
            how = "sweep 470-1000" if chosen_on is CHOOSE else "best on 470-1700"
            report(name, chosen, how, predict(values, chosen, low_is_change=low_is_change), frames)
    return rows


if __name__ == "__main__":
    main()
