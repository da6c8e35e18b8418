"""The command line as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.images import read_gray
from tests.conftest import shared_data

PROJECT = Path(__file__).resolve().parents[1]


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_check_ok_on_the_shipped_example() -> None:
    result = run("check", PROJECT / "config.yaml")
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["ok", "zone main: change, threshold 0.9, pin 17"]


def test_check_lists_each_problem_and_exits_2(write_config: Callable[[str], Path]) -> None:
    path = write_config("detection: {threshold: 1.4}\ngpio: {pin: 77}\n")
    result = run("check", path)
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        f"{path}: detection.threshold: must be between 0 and 1, got 1.4",
        f"{path}: gpio.pin: must be a BCM pin number between 0 and 53, got 77",
    ]


def test_check_reports_a_bad_mask_image(write_config: Callable[[str], Path], tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "m.png"), np.zeros((10, 10), np.uint8))
    path = write_config("mask: {image: m.png}\n")
    result = run("check", path)
    assert result.returncode == 2
    assert "mask.image:" in result.stdout and "expected the frame size 640x480" in result.stdout


def gates(name: str) -> Path:
    return shared_data("seed-jp-gates", f"jp_gates_{name}.png")


def independent_figures(a: Path, b: Path) -> tuple[float, float]:
    from skimage.metrics import structural_similarity

    x = cv2.cvtColor(cv2.imread(str(a)), cv2.COLOR_BGR2GRAY)
    y = cv2.cvtColor(cv2.imread(str(b)), cv2.COLOR_BGR2GRAY)
    err = float(np.mean((x.astype(float) - y.astype(float)) ** 2))
    _, full = structural_similarity(
        x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, full=True
    )
    return err, float(full.mean())


def parse(stdout: str) -> tuple[float, float]:
    words = stdout.split()
    return float(words[words.index("MSE:") + 1]), float(words[words.index("SSIM:") + 1])


@pytest.mark.parametrize("name", ["original", "contrast", "photoshopped"])
def test_compare_matches_an_independent_computation(name: str) -> None:
    original, other = gates("original"), gates(name)
    result = run("compare", original, other)
    assert result.returncode == 0, result.stderr
    got_mse, got_ssim = parse(result.stdout)
    want_mse, want_ssim = independent_figures(original, other)
    assert got_mse == pytest.approx(want_mse, abs=0.005)
    assert got_ssim == pytest.approx(want_ssim, abs=1e-4)


def test_ssim_ranks_the_photoshop_below_the_contrast_change_and_mse_does_not() -> None:
    contrast = parse(run("compare", gates("original"), gates("contrast")).stdout)
    photoshop = parse(run("compare", gates("original"), gates("photoshopped")).stdout)
    assert photoshop[0] < contrast[0]  # MSE: the photoshop looks *closer*
    assert photoshop[1] < contrast[1]  # SSIM: the photoshop is rightly *further*


def test_compare_writes_a_diff_with_the_logo_boxed(tmp_path: Path) -> None:
    out = tmp_path / "diff.png"
    result = run("compare", gates("original"), gates("photoshopped"), "--diff", out)
    assert result.returncode == 0, result.stderr
    picture = cv2.imread(str(out))
    assert picture.shape[0] == 168 and picture.shape[1] > 2 * 168
    red = (picture[:, :, 2] > 200) & (picture[:, :, 1] < 50) & (picture[:, :, 0] < 50)
    assert red.sum() > 100  # the boxes are drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diff.png"]  # no temporary left behind


def test_compare_with_a_mask_over_an_unchanged_area(tmp_path: Path) -> None:
    original = read_gray(gates("original"))
    # The same picture with a block changed at the bottom; the mask watches only the top.
    changed = original.copy()
    changed[120:, :] = 255 - changed[120:, :]
    cv2.imwrite(str(tmp_path / "a.png"), original)
    cv2.imwrite(str(tmp_path / "b.png"), changed)
    mask = np.zeros(original.shape, np.uint8)
    mask[:100, :] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    masked = parse(run("compare", tmp_path / "a.png", tmp_path / "b.png", "--mask", tmp_path / "mask.png").stdout)
    whole = parse(run("compare", tmp_path / "a.png", tmp_path / "b.png").stdout)
    assert masked == (0.0, 1.0)
    assert whole[1] < 0.8


def test_compare_of_different_sizes_is_one_clear_line(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((40, 50), np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((40, 60), np.uint8))
    result = run("compare", tmp_path / "a.png", tmp_path / "b.png")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"monitor: error: {tmp_path / 'b.png'}: is 60x40, expected the size of {tmp_path / 'a.png'} (50x40)"
    ]


def test_compare_of_a_missing_file(tmp_path: Path) -> None:
    result = run("compare", tmp_path / "a.png", tmp_path / "b.png")
    assert result.returncode == 1
    assert result.stderr.strip() == f"monitor: error: {tmp_path / 'a.png'}: no such file"
