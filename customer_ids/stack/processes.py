"""Start, find and stop the stack's background processes through pid files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from customer_ids.domain.errors import CustomerIdsError

# Processes this interpreter started, kept so they are reaped (no zombies, no ResourceWarning).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class StackError(CustomerIdsError):
    """The local stack cannot start; the message says what is wrong and what to do."""


def require_program(name: str, install_hint: str) -> str:
    """Return the path of a program, or fail with the command that installs it."""
    path = shutil.which(name)
    if path is None:
        raise StackError(f"{name} is not installed; install it with: {install_hint}")
    return path


def read_pid(pid_file: Path) -> int | None:
    """The pid in pid_file if that process is still alive, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # A zombie child of ours counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"):
        return None
    return pid


def spawn(argv: list[str], pid_file: Path, log_file: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start argv detached from this terminal (its own session), output to log_file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    _CHILDREN[proc.pid] = proc
    return proc


def stop(pid_file: Path, grace_seconds: float = 30.0) -> bool:
    """SIGTERM and wait; SIGKILL only after the grace period. True if one was running."""
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and read_pid(pid_file) is not None:
        time.sleep(0.1)
    if read_pid(pid_file) is not None:
        os.kill(pid, signal.SIGKILL)
        while read_pid(pid_file) is not None:
            time.sleep(0.05)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait()
    pid_file.unlink(missing_ok=True)
    return True


def kill(pid_file: Path) -> bool:
    """SIGKILL at once (a crash, for fault tests), and reap it. True if one was running."""
    pid = read_pid(pid_file)
    if pid is None:
        return False
    os.kill(pid, signal.SIGKILL)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait()
    else:
        while read_pid(pid_file) is not None:
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return True


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log, to show why a process died."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"
