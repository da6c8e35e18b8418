"""Bad input, fuzzed (hypothesis): config documents, mask polygons and image files.

Whatever the input, the answer is a ``ConfigError`` naming the key, a mask
that watches something, or a skipped and counted file: never a traceback.
"""

from __future__ import annotations

import math
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from monitor.config import Config, SourceConfig, parse_config
from monitor.exc import ConfigError
from monitor.images import ImageFileError, read_gray
from monitor.mask import build_mask
from monitor.similarity import Comparator
from monitor.sources import ImageFolderSource
from tests.scenes import background

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAME = "fuzz.yaml"


# --- the config loader -------------------------------------------------------------------------


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (``MqttConfig | None`` included), or None."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _keys(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    return {name: _model_of(field.annotation) for name, field in model.model_fields.items()}


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1),  # the range most fields take
    st.integers(min_value=-2, max_value=100),
    st.text(max_size=12),
    st.sampled_from(["off", "on", "hold", "pulse", "ssim", "pixels", "fraction", "opencv", "images", "0", "1e9"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)


@st.composite
def sections(draw: st.DrawFn, model: type[BaseModel], depth: int = 0) -> dict[Any, Any]:
    """A mapping shaped like ``model``: mostly its own keys, some strangers, values of any kind."""
    keys = _keys(model)
    names = draw(st.lists(st.sampled_from(sorted(keys)) | st.text(max_size=8), max_size=5, unique=True))
    out: dict[Any, Any] = {}
    for name in names:
        sub = keys.get(name)
        if sub is not None and depth < 2 and draw(st.integers(0, 3)):
            out[name] = draw(sections(sub, depth + 1))
        else:
            out[name] = draw(values)
    if draw(st.integers(0, 9)) == 0:
        out[draw(st.integers(-3, 3) | st.booleans())] = draw(scalars)  # a key YAML reads as a number
    return out


# Bits of YAML, joined at random: tags, anchors, dates and numbers PyYAML builds objects from.
YAML_BITS = [
    "source:", "detection:", "mask:", "gpio:", "events:", " width:", " threshold:", " include:", "\n", "  ",
    "- ", "[", "]", "{", "}", ",", ": ", "? ", "'", '"', "#", "|", ">", "~", "&a ", "*a", "<<: ", "!!int ",
    "!!float ", "!!binary ", "!!timestamp ", "!!set ", "!!omap ", "!!python/name:os.system ", "2001-02-30",
    "2001-12-14t21:59:43.10-05:00", "1:20:30", "0x1F", "0o17", "0b101", "1e400", ".nan", "-.inf", "null", "x",
    "17", "0.9", "yes", "off", "\t", "\x00", "\ufeff", "%YAML 1.1\n", "---\n", "...\n",
]  # fmt: skip


def yaml_word(key: Any) -> str:
    """A key as YAML writes it: ``true``, ``null``, ``3``."""
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def key_named(problem: str, document: dict[Any, Any]) -> bool:
    """Whether ``problem`` starts with a key path rooted at one of the document's top-level keys."""
    rest = problem.removeprefix(f"{NAME}: ")
    roots = [str(key) for key in document] + [yaml_word(key) for key in document] + [repr(key) for key in document]
    return any(rest.startswith(root) and rest[len(root) : len(root) + 1] in {".", "[", ":"} for root in roots)


@FUZZ
@given(document=sections(Config))
def test_random_config_documents_give_a_config_or_one_line_per_problem_naming_the_key(
    document: dict[Any, Any],
) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    document = yaml.safe_load(text)  # as the loader sees it: YAML turns some characters into others
    with tempfile.TemporaryDirectory() as folder:
        try:
            config = parse_config(text, name=NAME, base_dir=Path(folder))
        except ConfigError as exc:
            assert exc.problems
            for problem in exc.problems:
                assert "\n" not in problem and problem.startswith(f"{NAME}: ")
                assert key_named(problem, document), (problem, document)
            return
        try:
            mask = build_mask(config.zones["main"].mask, width=config.source.width, height=config.source.height)
        except ConfigError as exc:
            assert all(problem.startswith("mask") for problem in exc.problems), exc.problems
            return
    assert mask is None or mask.shape == (config.source.height, config.source.width)


@FUZZ
@given(text=st.lists(st.sampled_from(YAML_BITS) | st.text(max_size=4), max_size=30).map("".join))
@example(text="source: {fps: 2001-02-30}")  # a date PyYAML cannot build
@example(text="detection: {threshold: !!float nope}")
@example(text="[" * 3000)  # nesting deeper than the parser's recursion
@example(text="a: &a [*a]")
def test_random_yaml_text_never_raises_anything_but_config_error(text: str) -> None:
    try:
        parse_config(text, name=NAME)
    except ConfigError as exc:
        assert exc.problems and all(p.startswith(f"{NAME}: ") and "\n" not in p for p in exc.problems)


# --- mask polygons -----------------------------------------------------------------------------


special = st.sampled_from([math.nan, math.inf, -math.inf, -0.0, -1e-9, 1e308, -1e308])


@st.composite
def polygons(draw: st.DrawFn, width: int, height: int, units: str) -> list[list[float]]:
    """Polygons that are mostly inside the frame: triangles, self-intersecting bow-ties, lines, points."""
    sx, sy = (1.0, 1.0) if units == "fraction" else (float(width), float(height))
    coordinate = st.floats(min_value=-0.1, max_value=1.1, allow_nan=False)
    point = st.tuples(coordinate, coordinate).map(lambda p: [p[0] * sx, p[1] * sy])
    shape = draw(st.sampled_from(["any", "repeated", "collinear", "bowtie"]))
    if shape == "repeated":
        return [draw(point)] * draw(st.integers(0, 5))
    if shape == "collinear":
        (x0, y0), (x1, y1) = draw(point), draw(point)
        return [[x0 + (x1 - x0) * t, y0 + (y1 - y0) * t] for t in (0.0, 0.5, 1.0, 0.25)]
    if shape == "bowtie":
        (x0, y0), (x1, y1) = draw(point), draw(point)
        return [[x0, y0], [x1, y1], [x1, y0], [x0, y1]]
    points = draw(st.lists(point, max_size=7))
    if points and draw(st.integers(0, 5)) == 0:
        points[draw(st.integers(0, len(points) - 1))][draw(st.integers(0, 1))] = draw(special)
    return points


@st.composite
def masks(draw: st.DrawFn) -> tuple[int, int, str, list[Any], list[Any]]:
    width, height = draw(st.integers(16, 64)), draw(st.integers(16, 48))
    units = draw(st.sampled_from(["pixels", "fraction"]))
    include = draw(st.lists(polygons(width, height, units), max_size=3))
    exclude = draw(st.lists(polygons(width, height, units), max_size=3))
    return width, height, units, include, exclude


def inside(polygon: list[list[float]], width: int, height: int, units: str) -> bool:
    max_x, max_y = (1.0, 1.0) if units == "fraction" else (width, height)
    return all(0 <= x <= max_x and 0 <= y <= max_y for x, y in polygon)


@FUZZ
@given(case=masks())
@example(case=(32, 24, "pixels", [[[0, 0], [32, 0], [32, 24], [0, 24]]], [[[0, 0], [32, 0], [32, 24], [0, 24]]]))
@example(case=(32, 24, "fraction", [[[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]], []))
def test_mask_polygons_are_refused_at_load_or_watch_something(case: tuple[int, int, str, list[Any], list[Any]]) -> None:
    width, height, units, include, exclude = case
    text = yaml.safe_dump(
        {"source": {"width": width, "height": height}, "mask": {"units": units, "include": include, "exclude": exclude}}
    )
    groups = {"include": include, "exclude": exclude}
    bad = {
        f"mask.{group}[{index}]"
        for group, polys in groups.items()
        for index, polygon in enumerate(polys)
        if len(polygon) < 3 or not inside(polygon, width, height, units)
    }
    try:
        config = parse_config(text, name=NAME)
    except ConfigError as exc:
        assert bad, exc.problems  # refused only for a real reason
        named = {problem.removeprefix(f"{NAME}: ").split(":")[0] for problem in exc.problems}
        assert named == bad
        return
    assert not bad
    try:
        mask = build_mask(config.zones["main"].mask, width=width, height=height)
    except ConfigError as exc:
        assert [p.split(":")[0] for p in exc.problems] == ["mask"]  # nothing left to watch, said at load time
        return
    assert mask is None or (mask.shape == (height, width) and mask.dtype == bool and mask.any())
    reference = cv2.resize(background(), (width, height), interpolation=cv2.INTER_AREA)
    frame = reference.copy()
    frame[: height // 2] = 255 - frame[: height // 2]
    comparison = Comparator(reference, mask=mask).compare(frame)
    assert math.isfinite(comparison.score) and -1 - 1e-5 <= comparison.score <= 1 + 1e-5  # float32 sums
    assert 0 <= comparison.changed_fraction <= 1


# --- image files -------------------------------------------------------------------------------


def _encoded(ext: str) -> bytes:
    ok, data = cv2.imencode(ext, background())
    assert ok
    return data.tobytes()


REAL = {ext: _encoded(ext) for ext in (".png", ".jpg", ".bmp", ".tif")}
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"BM", b"II*\x00", b"MM\x00*", b"GIF89a", b"RIFF", b"P5\n", b"P6\n"]


@st.composite
def image_bytes(draw: st.DrawFn) -> bytes:
    """Random bytes, a real image mangled (cut short, bytes overwritten), or a header with random dimensions."""
    kind = draw(st.sampled_from(["random", "magic", "mangled", "pnm"]))
    if kind == "random":
        return draw(st.binary(max_size=3000))
    if kind == "magic":
        return draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=3000))
    if kind == "pnm":
        magic = draw(st.sampled_from(["P2", "P5", "P6", "P7", "Pf", "PF"]))
        width, height = draw(st.integers(-2, 3000)), draw(st.integers(-2, 3000))
        maxval = draw(st.sampled_from([0, 1, 255, 256, 65535, 70000]))
        return f"{magic}\n{width} {height}\n{maxval}\n".encode() + draw(st.binary(max_size=2000))
    data = bytearray(REAL[draw(st.sampled_from(sorted(REAL)))])
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@FUZZ
@given(files=st.lists(st.tuples(st.sampled_from([".png", ".jpg", ".bmp", ".tif"]), image_bytes()), max_size=4))
@example(files=[(".png", b"P5\n100000 100000\n255\n" + bytes(64))])  # more pixels than OpenCV decodes
@example(files=[(".png", b"Pf\n4 4\n-1.0\n" + bytes(64))])  # decodes, as float32
def test_random_bytes_in_the_image_folder_are_skipped_and_counted(files: list[tuple[str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for index, (ext, data) in enumerate(files):
            (folder / f"{index:02d}{ext}").write_bytes(data)
        cv2.imwrite(str(folder / "99.png"), background())  # one good image, last
        for path in sorted(folder.iterdir()):
            try:
                image = read_gray(path)
            except ImageFileError as exc:
                assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
            else:
                assert image.ndim == 2 and image.dtype == np.uint8 and image.size > 0
        height, width = background().shape
        config = SourceConfig(kind="images", device=str(folder), width=width, height=height)
        source = ImageFolderSource(config, realtime=False)
        delivered = []
        with source:
            while (frame := source.read()) is not None:
                assert frame.image.ndim == 2 and frame.image.dtype == np.uint8
                delivered.append(frame.index)
    assert len(delivered) + source.skipped == len(files) + 1
    assert len(delivered) >= 1
