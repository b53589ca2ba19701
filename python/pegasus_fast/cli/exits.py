"""The exit codes of ``pegasus-fast``, the same for every verb (the README's CLI section and
``pegasus-fast --help`` list them)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_NOT_FOUND = 1  # the key, table or duplication is not there, or a check failed
EXIT_USAGE = 2  # bad arguments
EXIT_UNAVAILABLE = 3  # a remote, a node or a partition cannot serve now (count: a partial answer)
EXIT_ERROR = 4  # any other error

__all__ = ["EXIT_ERROR", "EXIT_NOT_FOUND", "EXIT_OK", "EXIT_UNAVAILABLE", "EXIT_USAGE"]
