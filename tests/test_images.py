"""Image files: grayscale reads and atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from monitor.images import ImageFileError, read_gray, write_image_atomic


def test_colour_is_read_as_bgr2gray(tmp_path: Path) -> None:
    bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    np.testing.assert_array_equal(read_gray(tmp_path / "a.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


def png_bomb(path: Path, *, width: int = 8192, height: int = 8192) -> None:
    """A real PNG of 16-bit RGBA zeros, compressed to about half a megabyte: over 500 MB once decoded.

    Written by hand, a megabyte of rows at a time, so the test never holds the decoded image itself.
    """
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(9)
    row = bytes(1 + width * 8)  # filter byte + 4 samples of 2 bytes per pixel
    rows_per_piece = max(1, (1 << 20) // len(row))
    compressed = []
    for start in range(0, height, rows_per_piece):
        compressed.append(packer.compress(row * min(rows_per_piece, height - start)))
    compressed.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(compressed)) + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_refused_from_its_header_before_decoding(tmp_path: Path) -> None:
    bomb = tmp_path / "reference.png"
    png_bomb(bomb)
    assert bomb.stat().st_size < 1_000_000
    script = (
        "import sys\n"
        "from monitor.images import ImageFileError, read_gray\n"
        "try:\n    read_gray(sys.argv[1])\nexcept ImageFileError as exc:\n    print(exc)\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over an exec from the parent (pytest, big by now).
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')) // 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    message, peak_mb = result.stdout.strip().splitlines()
    assert message == (f"{bomb}: its header claims 8192x8192x4 at 16 bits, 537 MB decoded (at most 67 MB): not decoded")
    assert int(peak_mb) < 300  # the interpreter, numpy and OpenCV: nothing of the 537 MB


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("cut.png", b"\x89PNG\r\n\x1a\n\x00\x00", "not a readable image (expected PNG, JPEG, BMP, TIFF or PNM)"),
        ("empty.jpg", b"", "empty: not a readable image"),
        ("gif.png", b"GIF89a" + bytes(100), "not a readable image (expected PNG, JPEG, BMP, TIFF or PNM)"),
        ("wide.pgm", b"P5\n100000 100000\n255\n" + bytes(64), "its header claims 100000x100000x1 at 8 bits"),
    ],
)
def test_what_a_header_says_is_checked_first(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ImageFileError) as info:
        read_gray(tmp_path / name)
    assert str(info.value).startswith(f"{tmp_path / name}: {message}")


def test_an_image_of_another_size_than_asked_is_refused_before_decoding(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "small.jpg"), np.zeros((10, 20), np.uint8))
    with pytest.raises(ImageFileError, match=r"small\.jpg: is 20x10, expected the frame size 640x480"):
        read_gray(tmp_path / "small.jpg", size=(640, 480))
    assert read_gray(tmp_path / "small.jpg", size=(20, 10)).shape == (10, 20)


def test_a_fifo_is_not_read_and_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "reference.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageFileError, match=r"reference\.png: not a file"):
        read_gray(fifo)


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
