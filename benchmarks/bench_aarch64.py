"""Instructions per frame on arm64, counted under qemu-aarch64 with a TCG plugin (issue 20).

The same child as ``bench_callgrind.py`` (320x240: the whole frame, the left
half, and a frame whose verdict is reused), run by an arm64 Python 3.11 under
Debian's ``qemu-aarch64`` (package qemu-user) as a Cortex-A53 (``-cpu
cortex-a53``: the Pi Zero 2 W's core, ARMv8.0 with NEON, so NumPy and OpenCV
pick the code paths a Pi would), with ``aarch64/count_insns.c``, a QEMU plugin
that counts the guest instructions executed. Debian's qemu-user has plugin
support but ships no plugin; valgrind for arm64 does not run under qemu-user.
Per frame = (N frames - none) / N, as with callgrind.

The arm64 userland is made once and kept in ~/.cache/monitor-bench: Debian
bookworm's python3 (``debootstrap --foreign --variant=minbase``, the packages
unpacked only) and the arm64 wheels of the NumPy, OpenCV, pydantic and PyYAML
versions this checkout uses (``pip install --platform``). About 250 MB and a
minute the first time; skipped, saying why, where a step is not possible.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_callgrind import CASES, CHILD, photos_folder

FRAMES = 100
CPU = "cortex-a53"
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "monitor-bench" / "aarch64"
WHEELS = ("numpy", "opencv-python-headless", "pydantic", "pydantic-core", "pyyaml")
WHEELS += ("typing-extensions", "annotated-types", "typing-inspection")


class Unavailable(Exception):
    """A step of the set-up cannot be done here."""


def _run(command: list[str], *, what: str, timeout: float = 900, **kwargs: object) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"{what} failed ({exc})") from None


def qemu() -> str:
    """Debian's dynamic qemu-aarch64 (the static one cannot load plugins), installed if missing."""
    if shutil.which("qemu-aarch64") is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        _run(
            ["apt-get", "install", "-y", "--no-install-recommends", "qemu-user"],
            what="apt-get install qemu-user",
            env=env,
        )
    found = shutil.which("qemu-aarch64")
    if found is None:
        raise Unavailable("qemu-aarch64 (Debian: apt install qemu-user) is not installed")
    return found


def plugin() -> Path:
    built = CACHE / "count_insns.so"
    source = HERE / "aarch64" / "count_insns.c"
    if not built.exists() or built.stat().st_mtime < source.stat().st_mtime:
        if shutil.which("gcc") is None:
            raise Unavailable("gcc is not installed, to build the counting plugin")
        CACHE.mkdir(parents=True, exist_ok=True)
        _run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(built), str(source)], what="building the plugin")
    return built


def userland() -> tuple[Path, Path]:
    """An arm64 root with python3, and a folder of arm64 wheels for it."""
    root, site = CACHE / "root", CACHE / "site"
    if not (root / "usr" / "bin" / "python3.11").exists():
        if shutil.which("debootstrap") is None or os.geteuid() != 0:
            raise Unavailable("debootstrap (as root) is needed to make an arm64 root once")
        shutil.rmtree(root, ignore_errors=True)
        options = ["--arch", "arm64", "--variant=minbase", "--foreign", "--include=python3"]
        _run(
            ["debootstrap", *options, "bookworm", str(root), "http://deb.debian.org/debian"],
            what="debootstrap --arch arm64",
            timeout=1800,
        )
        for deb in sorted((root / "var" / "cache" / "apt" / "archives").glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(root)], what=f"unpacking {deb.name}")
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
    stamp = site / ".pins"
    if not stamp.exists() or stamp.read_text() != "\n".join(pins):
        shutil.rmtree(site, ignore_errors=True)
        platforms = ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--target",
                str(site),
            ]
            + [f"--platform={p}" for p in platforms]
            + ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none"]
            + pins,
            what="pip install of the arm64 wheels",
        )
        stamp.write_text("\n".join(pins))
    return root, site


def count(qemu_binary: str, plugin_path: Path, root: Path, site: Path, script: Path, frames: int, case: str) -> int:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(HERE.parent)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    command = [qemu_binary, "-cpu", CPU, "-L", str(root), "-plugin", str(plugin_path), "-d", "plugin"]
    command += [str(root / "usr" / "bin" / "python3.11"), str(script), str(frames), case, photos_folder()]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800, check=False)
    found = re.search(r"^instructions (\d+)$", done.stderr + done.stdout, re.M)
    if done.returncode != 0 or found is None:
        raise Unavailable(f"the arm64 child failed: {(done.stderr or done.stdout).strip()[-300:]}")
    return int(found.group(1))


def main() -> list[dict[str, object]]:
    try:
        qemu_binary = qemu()
        plugin_path = plugin()
        root, site = userland()
    except Unavailable as exc:
        print(f"skipped: {exc}")
        return [{"case": "half", "measured": f"not counted: {exc}"[:38]}]
    rows: list[dict[str, object]] = []
    print(f"qemu-aarch64 -cpu {CPU} with a counting plugin, 320x240, {FRAMES} frames minus none, per frame:")
    with tempfile.TemporaryDirectory(prefix="bench-aarch64-") as tmp:
        script = Path(tmp) / "frames.py"
        script.write_text(CHILD, encoding="utf-8")
        for case, title in CASES.items():
            empty, full = (count(qemu_binary, plugin_path, root, site, script, n, case) for n in (0, FRAMES))
            per_frame = (full - empty) / FRAMES
            print(f"  {title:52} {per_frame / 1e6:5.2f} M (arm64, NEON)")
            rows.append(
                {
                    "case": case,
                    "instructions_per_frame": per_frame,
                    "measured": f"{per_frame / 1e6:.2f} M (arm64, NEON)",
                }
            )
    return rows


if __name__ == "__main__":
    main()
