"""Test root only: adapt libcamera's virtual camera (virtual_sensor.py) the moment libcamera loads.

This folder is on PYTHONPATH inside the test root made by build-root.sh, so
every Python process there (pytest and the ``monitor run`` it starts) gets the
hook; the product itself never imports anything from here.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any


class _AfterLibcameraLoads(importlib.abc.MetaPathFinder):
    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "libcamera":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader
        exec_module = loader.exec_module

        def exec_and_adapt(module: ModuleType) -> None:
            exec_module(module)
            import virtual_sensor

            virtual_sensor.install(module)

        loader.exec_module = exec_and_adapt
        return spec


sys.meta_path.insert(0, _AfterLibcameraLoads())
