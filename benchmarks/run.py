"""Run every benchmark in this folder (``make bench``), or those named: ``run.py bench_memory.py``.

Figures and how to read them: benchmarks/README.md. About a quarter of an hour
on a 2-core x86 machine; the callgrind and arm64 ones are skipped where
valgrind or an arm64 environment is missing, the Motion one where Motion
cannot be installed. At the end, the figures of issue 20 (a Pi Zero 2 W
budget) in one table, with the machine's CPU.
"""

from __future__ import annotations

import inspect
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
    "bench_aarch64.py",
    "bench_gating.py",
    "bench_peers.py",
    "bench_drift.py",
    "bench_stream.py",
    "soak.py",
    "bench_clips.py",
    "bench_arming.py",
    "bench_tamper.py",
]


def run(name: str) -> list[dict[str, object]]:
    """Run one benchmark; the rows its ``main()`` returns, if it takes no arguments (else it runs as a script)."""
    module = runpy.run_path(str(HERE / name), run_name=name.removesuffix(".py"))
    main = module.get("main")
    if main is not None and not inspect.signature(main).parameters:
        return main() or []
    try:
        runpy.run_path(str(HERE / name), run_name="__main__")
    except SystemExit as done:
        if done.code not in (0, None):
            print(f"{name} exited with {done.code}")
    return []


if __name__ == "__main__":
    sys.path[:0] = [str(HERE), str(HERE.parent)]  # common.py, and the monitor package of this checkout
    from budget import print_budget

    results: dict[str, list[dict[str, object]]] = {}
    for name in sys.argv[1:] or BENCHMARKS:
        print(f"\n== {name} ==", flush=True)
        results[name] = run(name)
    print_budget(results)
