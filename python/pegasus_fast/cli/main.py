"""``pegasus-fast``: the shell verbs of Pegasus over a cluster (embedded, or served with --connect),
serving one, and the demo."""

from __future__ import annotations

import os
import sys

from .. import __version__, backend
from ..bench import runner as bench_runner
from ..errors import PegasusFastError
from . import serve as serve_cli
from .parser import parser
from .session import opened
from .verbs import VERBS


def run(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.cmd == "demo":
        from .demo import main as demo_main

        print(f"pegasus-fast {__version__} demo (backend: {backend()})\n")
        return demo_main(args.compare_legacy, args.legacy_seconds)
    if args.cmd == "serve":
        return serve_cli.run(args)
    if args.cmd == "bench":
        return bench_runner.main(args)
    with opened(args) as c:
        VERBS[args.cmd](c, args)
    return 0


#: what a user or the machine can cause (bad input, a missing table, a full disk):
#: one line, no traceback. Anything else is a bug, and keeps its traceback.
EXPECTED_ERRORS = (PegasusFastError, OSError)


def main(argv: list[str] | None = None) -> int:
    """Run one command; an expected failure prints one ``error:`` line (a traceback with PEGASUS_FAST_DEBUG=1)."""
    try:
        return run(argv)
    except EXPECTED_ERRORS as exc:
        if os.environ.get("PEGASUS_FAST_DEBUG", "").strip() not in ("", "0"):
            raise
        print(f"pegasus-fast: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pegasus-fast: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
