"""`make run` survives a dying worker or scheduler: scripts/respawn.py restarts it and says so.

honcho stops the whole stack when one process exits; the worker and the scheduler run under
the wrapper, so honcho never sees them exit. Stopping the wrapper (honcho's SIGTERM, Ctrl-C)
stops the command with it, with no restart and nothing left running.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.plugins.harness import ROOT, django_subprocess_env

RESPAWN = str(Path(ROOT) / "scripts" / "respawn.py")
FAST = {"RESPAWN_DELAY": "0.2", "RESPAWN_MAX_DELAY": "0.4", "RESPAWN_STOP_TIMEOUT": "5"}


class Wrapper:
    """scripts/respawn.py NAME -- command, its log read line by line."""

    def __init__(self, name: str, command: list[str], env: dict | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, RESPAWN, name, "--", *command],
            cwd=ROOT,
            env={**(env or os.environ), **FAST},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.log.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s; log:\n" + "\n".join(self.log))

    def started_pid(self, name: str) -> int:
        return int(self.expect(rf"\[respawn\] {name} started \(pid (\d+)\)").group(1))

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its parent is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid), f"pid {pid} is still running"


def test_a_command_that_exits_is_restarted_and_logged_with_a_backoff() -> None:
    wrapper = Wrapper("worker", [sys.executable, "-c", "import sys; sys.exit(3)"])
    try:
        first = wrapper.started_pid("worker")
        wrapper.expect(r"^\[respawn\] worker exited with code 3, restarting in 0\.2s$")
        second = wrapper.started_pid("worker")
        wrapper.expect(r"^\[respawn\] worker exited with code 3, restarting in 0\.4s$")
        assert second != first
        assert wrapper.proc.poll() is None  # the wrapper itself never exits: honcho sees nothing
        wrapper.proc.send_signal(signal.SIGTERM)
        assert wrapper.proc.wait(10) == 0
        wrapper.expect(r"^\[respawn\] worker stopped$")
    finally:
        wrapper.close()


@pytest.mark.django_db(transaction=True)
def test_a_killed_scheduler_is_restarted_and_sigterm_stops_it_for_good() -> None:
    wrapper = Wrapper("scheduler", [sys.executable, "manage.py", "etl_scheduler"], env=django_subprocess_env())
    try:
        first = wrapper.started_pid("scheduler")
        time.sleep(1.0)  # let it get going
        os.kill(first, signal.SIGKILL)
        wrapper.expect(r"^\[respawn\] scheduler was killed by SIGKILL, restarting in 0\.2s$")
        second = wrapper.started_pid("scheduler")
        assert second != first and alive(second)
        time.sleep(1.0)
        wrapper.proc.send_signal(signal.SIGTERM)  # what honcho sends when the stack stops
        assert wrapper.proc.wait(15) == 0
        wait_gone(second)
        wrapper.expect(r"^\[respawn\] scheduler stopped$")
        assert sum("restarting" in line for line in wrapper.log) == 1  # the kill, not the stop
    finally:
        wrapper.close()


def test_ctrl_c_stops_the_wrapper_and_its_command_without_a_restart(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    sleeper = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    wrapper = Wrapper("worker", [sys.executable, "-c", sleeper])
    try:
        child = wrapper.started_pid("worker")
        os.killpg(wrapper.proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        assert wrapper.proc.wait(10) == 0
        wait_gone(child)
        wrapper.expect(r"^\[respawn\] worker stopped$")
        assert not any("restarting" in line for line in wrapper.log)
    finally:
        wrapper.close()


def test_a_command_that_ignores_sigterm_is_killed_after_the_stop_timeout(tmp_path: Path) -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    wrapper = Wrapper("worker", [sys.executable, "-c", stubborn])
    try:
        child = wrapper.started_pid("worker")
        time.sleep(0.5)
        wrapper.proc.send_signal(signal.SIGTERM)
        wrapper.expect(r"did not stop within 5s; killing it", timeout=15)
        assert wrapper.proc.wait(10) == 0
        wait_gone(child)
    finally:
        wrapper.close()


def test_the_command_ends_when_the_wrapper_itself_is_killed() -> None:
    wrapper = Wrapper("worker", [sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        child = wrapper.started_pid("worker")
        os.kill(wrapper.proc.pid, signal.SIGKILL)
        wrapper.proc.wait(10)
        wait_gone(child)  # parent-death signal: no orphan
    finally:
        wrapper.close()


def test_the_procfile_runs_the_worker_and_the_scheduler_under_the_wrapper() -> None:
    entries = dict(line.split(": ", 1) for line in (Path(ROOT) / "Procfile").read_text().splitlines() if line)
    assert entries["worker"].startswith("exec .venv/bin/python scripts/respawn.py worker -- ")
    assert "db_worker" in entries["worker"]
    assert entries["scheduler"].startswith("exec .venv/bin/python scripts/respawn.py scheduler -- ")
    assert "etl_scheduler" in entries["scheduler"]
    assert "respawn" not in entries["web"] and "respawn" not in entries["bigquery"]
