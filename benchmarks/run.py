"""Run every benchmark in this folder (``make bench``)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["bench_similarity.py", "bench_drift.py"]

if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    for name in sys.argv[1:] or BENCHMARKS:
        print(f"\n== {name} ==", flush=True)
        runpy.run_path(str(HERE / name), run_name="__main__")
