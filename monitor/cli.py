"""The ``monitor`` command line: the only place that prints and picks exit codes.

Exit codes: 0 success, 1 a runtime error (camera, files), 2 an invalid config
or command line. Errors are one line, ``monitor: error: ...``; ``--debug``
adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor import __version__
from monitor.exc import ConfigError, MonitorError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2

Handler = Callable[[argparse.Namespace], int]


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a config file: print ``ok`` or one line per problem."""
    from monitor.config import load_config
    from monitor.mask import build_mask

    try:
        config = load_config(args.config)
        build_mask(config.mask, width=config.source.width, height=config.source.height)
    except ConfigError as exc:
        name = str(args.config)
        for problem in exc.problems:
            print(problem if problem.startswith(name) else f"{name}: {problem}")
        return EXIT_CONFIG
    print("ok")
    if not config.reference.path.exists():
        print(
            f"note: reference {config.reference.path} does not exist yet; "
            f"make it with: monitor capture-reference {args.config}",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    """The walkthrough as a command: MSE and SSIM of two images, optionally a diff picture."""
    from monitor.drawing import annotate, side_by_side
    from monitor.exc import ComparisonError
    from monitor.images import read_gray, write_image_atomic
    from monitor.similarity import Comparator, mse

    first, second = read_gray(args.a), read_gray(args.b)
    if first.shape != second.shape:
        raise ComparisonError(
            f"{args.b}: is {second.shape[1]}x{second.shape[0]}, expected the size of {args.a} "
            f"({first.shape[1]}x{first.shape[0]})"
        )
    mask = None
    if args.mask is not None:
        mask = read_gray(args.mask) >= 128
        if mask.shape != first.shape:
            raise ComparisonError(
                f"{args.mask}: is {mask.shape[1]}x{mask.shape[0]}, expected the image size "
                f"{first.shape[1]}x{first.shape[0]}"
            )
    comparator = Comparator(first, mask=mask, method=args.method, local_level=args.local_level)
    result = comparator.compare(second)
    print(f"MSE: {mse(first, second, mask):.2f}  SSIM: {result.score:.4f}")
    if args.diff is not None:
        picture = side_by_side(
            [
                annotate(first, mask=mask, boxes=result.boxes, label=Path(args.a).name),
                annotate(second, mask=mask, boxes=result.boxes, label=f"{Path(args.b).name}  {result.score:.4f}"),
            ]
        )
        write_image_atomic(args.diff, picture)
        print(f"wrote {args.diff} ({len(result.boxes)} changed regions boxed)")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor",
        description="Watch a camera for change against a reference image (SSIM) and switch a GPIO pin.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = sub.add_parser("check", help="validate a config file")
    check.add_argument("config", type=Path)
    check.set_defaults(handler=cmd_check)

    compare = sub.add_parser("compare", help="compare two images: MSE and SSIM")
    compare.add_argument("a", type=Path, help="first image (the reference)")
    compare.add_argument("b", type=Path, help="second image")
    compare.add_argument("--mask", type=Path, help="PNG of the same size, white = watched")
    compare.add_argument("--method", choices=["ssim", "ssim-structure"], default="ssim")
    compare.add_argument("--diff", type=Path, help="write both images with changed regions boxed")
    compare.add_argument(
        "--local-level", type=float, default=0.5, help="local SSIM below which a pixel is changed (0.5)"
    )
    compare.set_defaults(handler=cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        if args.debug:
            raise
        for problem in exc.problems:
            print(f"monitor: error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except MonitorError as exc:
        if args.debug:
            raise
        print(f"monitor: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
