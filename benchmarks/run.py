"""Run every benchmark in this folder (``make bench``), or those named: ``run.py bench_memory.py``.

Figures and how to read them: benchmarks/README.md. About four minutes on a
2-core x86 machine; the callgrind one is skipped where valgrind is missing.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "bench_similarity.py",
    "bench_zones.py",
    "bench_accuracy.py",
    "bench_pipeline.py",
    "bench_memory.py",
    "bench_startup.py",
    "bench_callgrind.py",
    "bench_drift.py",
    "bench_stream.py",
    "soak.py",
    "bench_clips.py",
    "bench_arming.py",
    "bench_tamper.py",
]

if __name__ == "__main__":
    sys.path[:0] = [str(HERE), str(HERE.parent)]  # common.py, and the monitor package of this checkout
    for name in sys.argv[1:] or BENCHMARKS:
        print(f"\n== {name} ==", flush=True)
        runpy.run_path(str(HERE / name), run_name="__main__")
