"""What a worker's exit code means to its supervisor, in one place.

Only two exits are final: a worker that was stopped or fenced (0), and one whose configuration
is wrong (2), which restarting cannot fix. Everything else, a signal included (a negative
Popen.returncode), is unexpected and is restarted after a backoff.
"""

from __future__ import annotations

EXIT_STOPPED = 0  # stopped on request, or fenced by a newer instance: nothing to restart
EXIT_CRASH = 1  # an unexpected error (Python's own code for an uncaught exception)
EXIT_CONFIG = 2  # settings, credentials or a taken port: the operator must change something
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: a command a person ran could not reach a dependency
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: a stalled call or a start-up wait that timed out

FINAL = frozenset({EXIT_STOPPED, EXIT_CONFIG})


def should_restart(returncode: int) -> bool:
    """True for every exit but a clean stop and a configuration error; a worker killed by any
    signal (SIGABRT, SIGBUS, SIGSEGV, SIGKILL, ...) crashed and is restarted."""
    return returncode not in FINAL
