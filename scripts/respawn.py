"""Keep one long-running process of `make run` alive: restart it when it dies, with a short backoff.

    python scripts/respawn.py NAME -- COMMAND [ARGS...]

honcho stops the whole stack (web and BigQuery emulator included) as soon as one of its
processes exits. The worker and the scheduler run under this wrapper instead, so honcho
never sees them exit: a worker that crashes or is killed is logged

    worker exited with code 3, restarting in 1s
    worker was killed by SIGKILL, restarting in 1s

and started again, 1 s after a crash, doubling up to RESPAWN_MAX_DELAY (30 s) while it
keeps dying within RESPAWN_STABLE_AFTER (60 s) of its start; a run that was in progress
is failed by the scheduler's dead-run check and the next run resumes from its last checkpoint.

SIGTERM, SIGINT or SIGHUP to the wrapper (honcho stopping, Ctrl-C) is passed on to the
command and ends the loop: the wrapper waits for the command (SIGKILL after
RESPAWN_STOP_TIMEOUT, 10 s) and exits, never restarting it. Should the wrapper itself be
SIGKILLed, Linux ends the command too (parent-death signal), so nothing is left orphaned.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _log(name: str, message: str) -> None:
    print(f"[respawn] {name} {message}", file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the wrapper dies, however it dies (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _wait_until_exit_or_stop(child: subprocess.Popen[bytes], stopping: threading.Event) -> int | None:
    """The command's exit code, or None as soon as the wrapper is asked to stop."""
    while True:
        try:
            return child.wait(0.2)
        except subprocess.TimeoutExpired:
            if stopping.is_set():
                return None


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: respawn.py NAME -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    name, command = argv[0], argv[2:]
    first_delay = _env_float("RESPAWN_DELAY", 1.0)
    max_delay = _env_float("RESPAWN_MAX_DELAY", 30.0)
    stable_after = _env_float("RESPAWN_STABLE_AFTER", 60.0)
    stop_timeout = _env_float("RESPAWN_STOP_TIMEOUT", 10.0)

    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: object) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                pass

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)

    delay = first_delay
    while not stopping.is_set():
        started = time.monotonic()
        try:
            child = subprocess.Popen(command, preexec_fn=_die_with_parent)  # noqa: PLW1509 - only prctl
        except OSError as exc:
            _log(name, f"could not start ({exc}); not restarting")
            return 127
        _log(name, f"started (pid {child.pid})")
        if stopping.is_set():  # a stop signal arrived while the command was being started
            child.terminate()
        code = _wait_until_exit_or_stop(child, stopping)
        if stopping.is_set():
            break
        assert code is not None
        if time.monotonic() - started >= stable_after:
            delay = first_delay
        _log(name, f"{_describe(code)}, restarting in {delay:g}s")
        stopping.wait(delay)
        delay = min(max_delay, delay * 2)

    if child is not None and child.poll() is None:
        try:
            code = child.wait(stop_timeout)
        except subprocess.TimeoutExpired:
            _log(name, f"did not stop within {stop_timeout:g}s; killing it")
            child.kill()
            code = child.wait()
    _log(name, "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
