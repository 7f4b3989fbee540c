"""Named points where fault tests stop a worker at an exact moment, as SIGSTOP cannot.

`CUSTOMER_IDS_FAILPOINT=before_commit:3` makes the worker stop itself (SIGSTOP) once, just
before the commit of its third batch that allocated numbers, after its records were flushed
and fenced: the open-transaction race of DESIGN §5.4. `recovery_started` stops a worker once
right after it marked Redis as rebuilding; `before_allocate` while it holds the sequence locks,
just before its allocation step. Unset in production; the tests' harness sets it.
"""

from __future__ import annotations

import os
import signal

from customer_ids.adapters.logs import get_logger

log = get_logger(__name__)

_SPEC = os.environ.get("CUSTOMER_IDS_FAILPOINT", "")
_counts: dict[str, int] = {}


def reached(name: str) -> None:
    """Stop this process here if the failpoint `name` is armed and its turn has come."""
    if not _SPEC:
        return
    point, _, nth = _SPEC.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == int(nth or 1):
        log.warning("failpoint_reached", point=name, pid=os.getpid())
        os.kill(os.getpid(), signal.SIGSTOP)
