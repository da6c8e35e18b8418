"""Image files: grayscale reads and atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from monitor.images import read_gray, write_image_atomic


def test_colour_is_read_as_bgr2gray(tmp_path: Path) -> None:
    bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    np.testing.assert_array_equal(read_gray(tmp_path / "a.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


def test_an_image_too_large_for_any_frame_is_refused_before_decoding(tmp_path: Path) -> None:
    # 9000x8000 = 72 Mpixels: over the 64 Mpixel cap the package sets for OpenCV (a corrupt
    # header could otherwise make a Pi allocate up to 1 Gpixel). The same file decodes with
    # OpenCV's own default, which shows the cap is what refuses it.
    cv2.imwrite(str(tmp_path / "huge.png"), np.zeros((8000, 9000), np.uint8))
    script = "import sys; from monitor.images import read_gray; print(read_gray(sys.argv[1]).shape)"

    def attempt(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "huge.png")],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=120,
        )

    capped = attempt()
    assert capped.returncode != 0 and "huge.png: not a readable image" in capped.stderr
    uncapped = attempt(OPENCV_IO_MAX_IMAGE_PIXELS=str(1 << 30))
    assert uncapped.returncode == 0 and uncapped.stdout.strip() == "(8000, 9000)"


def test_write_leaves_no_temporary_and_clears_stale_ones(tmp_path: Path) -> None:
    stale = tmp_path / ".reference.png.abc123.tmp"  # left by a writer killed mid-write
    stale.write_bytes(b"half a png")
    image = data.camera()
    write_image_atomic(tmp_path / "reference.png", image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference.png"]
    np.testing.assert_array_equal(read_gray(tmp_path / "reference.png"), image)


def test_written_images_get_the_mode_the_umask_allows(tmp_path: Path) -> None:
    # Under the unit's UMask=0027 a snapshot or reference must not be readable by other users.
    script = (
        "import os, sys; from pathlib import Path; from monitor.images import write_bytes_atomic\n"
        "os.umask(int(sys.argv[2], 8)); write_bytes_atomic(Path(sys.argv[1]), b'x')"
    )
    for umask, mode in (("027", 0o640), ("022", 0o644), ("077", 0o600), ("000", 0o644)):
        target = tmp_path / f"{umask}.jpg"
        subprocess.run([sys.executable, "-c", script, str(target), umask], check=True, timeout=60)
        assert target.stat().st_mode & 0o777 == mode, umask
