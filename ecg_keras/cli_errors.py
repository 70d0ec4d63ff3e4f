"""How every command fails on bad input: one line ``error: ...`` on stderr and exit code 1.

    with cli_errors.exit_on(ValueError, FileNotFoundError):
        result = library_call(config)

The errors a command expects (bad flags, missing or damaged files, failed checks) carry a
message that names the flag, file or record; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

# FloatingPointError: training whose weights became NaN (training.callbacks.StopOnNonFinite).
EXPECTED = (ValueError, FileNotFoundError, FloatingPointError)


@contextlib.contextmanager
def exit_on(*errors: type[BaseException]) -> Iterator[None]:
    """Turns ``errors`` (default ``EXPECTED``) raised in the block into ``error: MESSAGE`` and
    ``sys.exit(1)``."""
    caught = errors or EXPECTED
    try:
        yield
    except caught as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
