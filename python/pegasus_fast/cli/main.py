"""``pegasus-fast``: the shell verbs of Pegasus over a cluster (embedded, or served with --connect),
serving one, and the demo."""

from __future__ import annotations

import os
import sys

from .. import __version__, backend
from ..bench import runner as bench_runner
from ..errors import (
    DuplicationNotFoundError,
    InvalidArgumentError,
    InvalidTypeError,
    PartitionUnavailableError,
    PegasusFastError,
    RemoteUnavailableError,
    ResourceExhaustedError,
    TableNotFoundError,
)
from ..logs import install
from . import serve as serve_cli
from . import serve_file
from .exits import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from .parser import given, parser, verb_parser
from .session import opened
from .verbs import VERBS


def run(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.cmd == "demo":
        from .demo import main as demo_main

        print(f"pegasus-fast {__version__} demo (backend: {backend()})\n")
        return demo_main(args.compare_legacy, args.legacy_seconds)
    if args.cmd == "serve":
        knobs, serve_parser = None, verb_parser(ap, "serve")
        if args.config_file:
            values = serve_file.load(args.config_file, serve_parser)
            knobs = serve_file.apply(args, given(argv), values)
        return serve_cli.run(args, knobs, serve_parser)
    if args.cmd == "bench":
        return bench_runner.main(args)
    # a verb over an embedded cluster runs the library here. Its outcome is the verb's own
    # output, or its error as one line on stderr; the library's records repeat what that line
    # says (a duplication that failed...), so only a critical one is shown, every one from
    # warning up with PEGASUS_FAST_DEBUG=1
    install("warning" if _debug() else "critical", "text")
    with opened(args) as c:
        code = VERBS[args.cmd](c, args)
    return EXIT_OK if code is None else code


#: what a user or the machine can cause (bad input, a missing table, a full disk):
#: one line, no traceback. Anything else is a bug, and keeps its traceback.
EXPECTED_ERRORS = (PegasusFastError, OSError)

#: the exit code of each expected error, the first class that matches (else EXIT_ERROR)
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (TableNotFoundError, EXIT_NOT_FOUND),
    (DuplicationNotFoundError, EXIT_NOT_FOUND),
    (InvalidArgumentError, EXIT_USAGE),
    (InvalidTypeError, EXIT_USAGE),
    (PartitionUnavailableError, EXIT_UNAVAILABLE),
    (RemoteUnavailableError, EXIT_UNAVAILABLE),
    (ResourceExhaustedError, EXIT_UNAVAILABLE),
)


def exit_code(exc: BaseException) -> int:
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), EXIT_ERROR)


def main(argv: list[str] | None = None) -> int:
    """Run one command; an expected failure prints one ``pegasus-fast: <ErrorClass>: message``
    line (a traceback with PEGASUS_FAST_DEBUG=1); the exit codes are parser.EPILOG's."""
    try:
        code = run(argv)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except EXPECTED_ERRORS as exc:
        if _debug():
            raise
        print(f"pegasus-fast: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("pegasus-fast: interrupted", file=sys.stderr)
        return 130


def _reader_gone() -> int:
    """The reader of stdout went away (``| head``): it has what it wanted; end quietly, with
    stdout on /dev/null so the interpreter's last flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_OK


def _debug() -> bool:
    return os.environ.get("PEGASUS_FAST_DEBUG", "").strip() not in ("", "0")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
