"""`make bench`: run every bench/bench_*.py script in turn with this interpreter.

Each script prints its own markdown report; a failing script is reported and the
others still run, and the exit status says whether all of them succeeded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


def main() -> int:
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if not scripts:
        print("no bench/bench_*.py scripts found")
        return 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    failed: list[str] = []
    for script in scripts:
        print(f"\n## {script.name}\n", flush=True)
        started = time.monotonic()
        status = subprocess.call([sys.executable, str(script)], cwd=ROOT, env=env)
        print(f"\n({script.name}: exit {status}, {time.monotonic() - started:.0f} s)", flush=True)
        if status != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
