"""The zones of a config file as the user wrote them, and their replacement in place (the zone editor).

ruamel.yaml round-trips the file (:func:`monitor.config.load_round_trip`):
every zone, key and list whose value an edit keeps stays the same YAML node,
with its comments and layout; the result is validated whole before it is
written (:func:`monitor.config.write_round_trip`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.config import LEGACY_ZONE, Config, GpioConfig, load_round_trip, write_round_trip

__all__ = ["config_zones_as_written", "replace_config_zones"]


def config_zones_as_written(path: str | Path) -> dict[str, Any]:
    """The ``zones:`` of a config file as the user wrote them, as plain JSON-ready values.

    Only the keys in the file, not the defaults or the top-level detection a
    zone inherits. A config without ``zones:`` gives its one zone ``main``,
    made of the top-level ``mask`` and ``gpio``, with the pin it has by
    default there (17) written out: in a zone, no pin means none.
    """
    _, data = load_round_trip(Path(path))
    zones = data.get("zones")
    if "zones" in data:
        return _plain(zones) if isinstance(zones, dict) else {}
    main = {key: _plain(data[key]) for key in ("mask", "gpio") if key in data}
    gpio = main.get("gpio")
    if gpio is None or isinstance(gpio, dict):
        main["gpio"] = {"pin": GpioConfig().pin, **(gpio or {})}
    return {LEGACY_ZONE: main}


def replace_config_zones(
    path: str | Path, zones: dict[str, Any], *, check: Callable[[Config], None] | None = None
) -> Path:
    """Replace the ``zones:`` mapping of a config file in place; return the backup's path.

    As :func:`update_config_file`: the whole new config is validated before
    anything is written (then ``check(config)``, for what the model alone
    cannot see), the old file is copied to ``<name>.bak`` and the new one
    replaces it atomically. Where a zone, key or list keeps its value, its
    YAML node is kept, with its comments and layout. A config without
    ``zones:`` gets one where its top-level ``mask`` was, and that ``mask`` and
    ``gpio`` go (beside ``zones:`` they are an error): ``zones`` must say what
    they become, as :func:`config_zones_as_written` gives them.
    """
    from ruamel.yaml.comments import CommentedMap

    path = Path(path)
    yaml_rt, data = load_round_trip(path)
    if "zones" in data:
        old = data["zones"]
        last = list(old)[-1] if isinstance(old, CommentedMap) and old else None
        data["zones"] = _merged(old if isinstance(old, CommentedMap) else None, zones)
    else:
        last = None
        moved = [key for key in ("mask", "gpio") if key in data]
        legacy = CommentedMap()
        if moved:
            legacy[LEGACY_ZONE] = CommentedMap((key, data[key]) for key in moved)
        keys = list(data)
        position = keys.index(moved[0]) if moved else len(keys)
        for key in moved:
            del data[key]
        data.insert(position, "zones", _merged(legacy, zones))
    new_last = list(zones)[-1] if zones else None
    if list(data)[-1] != "zones" and new_last != last:
        _blank_line_after(data["zones"])  # the old last zone keeps the blank line it had
    return write_round_trip(path, yaml_rt, data, check=check)


def _blank_line_after(node: Any) -> None:
    """End a block with a blank line, as the sections of a config are, unless its last line has a comment."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    # The line break after the last value is its end-of-line comment's to write.
    while isinstance(node, CommentedMap | CommentedSeq) and node and not node.fa.flow_style():
        key = list(node)[-1] if isinstance(node, CommentedMap) else len(node) - 1
        value = node[key]
        if isinstance(value, CommentedMap | CommentedSeq) and value and not value.fa.flow_style():
            node = value
            continue
        if not any(node.ca.items.get(key) or ()):
            blank = CommentToken("\n\n", CommentMark(0), None)
            node.ca.items[key] = [None, None, blank, None] if isinstance(node, CommentedMap) else [blank, None]
        return


def _merged(old: Any, new: Any) -> Any:
    """``new`` as a YAML node, reusing the nodes of ``old`` wherever the value is the same."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(new, dict):
        node = old if isinstance(old, CommentedMap) else CommentedMap()
        for key in [key for key in node if key not in new]:
            del node[key]
        for index, (key, value) in enumerate(new.items()):
            if key in node:
                node[key] = _merged(node[key], value)
            else:
                node.insert(index, key, _merged(None, value))
        if not node:
            node.fa.set_flow_style()  # `{}`: an emptied block mapping would be written as invalid YAML
        return node
    if _same(old, new):
        return old
    if isinstance(new, list):
        seq = CommentedSeq(
            _merged(old[index] if isinstance(old, list) and index < len(old) else None, item)
            for index, item in enumerate(new)
        )
        # A point or a polygon reads best on one line, a list of polygons one polygon a line;
        # a list the user wrote keeps its style.
        flow = old.fa.flow_style() if isinstance(old, CommentedSeq) else _depth(new) <= 2
        if flow or not new:
            seq.fa.set_flow_style()
        else:
            seq.fa.set_block_style()
        return seq
    return new


def _same(old: Any, new: Any) -> bool:
    if isinstance(new, dict):
        return isinstance(old, dict) and list(old) == list(new) and all(_same(old[k], v) for k, v in new.items())
    if isinstance(new, list):
        return isinstance(old, list) and len(old) == len(new) and all(map(_same, old, new))
    # 1 == True in Python, and "1" is not 1 in the file.
    if _is_bool(old) != _is_bool(new) or isinstance(old, str) != isinstance(new, str):
        return False
    return bool(old == new)


def _is_bool(value: Any) -> bool:
    from ruamel.yaml.scalarbool import ScalarBoolean

    return isinstance(value, bool | ScalarBoolean)


def _depth(value: Any) -> int:
    return 1 + max(map(_depth, value), default=0) if isinstance(value, list) else 0


def _plain(value: Any) -> Any:
    """A ruamel node as plain JSON values (a number that is not finite, or an odd type, as text)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if value is None:
        return None
    if _is_bool(value):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    return str(value)
