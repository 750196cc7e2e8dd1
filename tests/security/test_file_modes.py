"""The data directory and everything the product writes there are owner-only (no group/other bits)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.plugins.harness import ROOT


def manage(data_dir: Path, *args: str) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "ETL_SPOOL_DIR", "DJANGO_SETTINGS_MODULE"}
    }
    # As `make run` without configuration: the default SQLite database under the data directory.
    env |= {"ML_PLATFORM_DATA_DIR": str(data_dir), "DATABASE_URL": "", "DJANGO_SETTINGS_MODULE": "ml_platform.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        # A usual login umask: the product itself must make its files private, not the caller.
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stderr[-3000:]


def loose(root: Path) -> list[str]:
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    return found


def test_make_run_set_up_writes_only_owner_only_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    manage(data, "migrate", "--noinput")
    manage(data, "seed_demo", "--transactions", "2000")
    names = {p.name for p in data.iterdir()}
    assert {"ml_platform.sqlite3", "secret_key", "field_encryption_key", "sources"} <= names
    assert (data / "sources" / "demo_shop.sqlite3").is_file()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert loose(data) == []


def test_it_tightens_an_existing_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    manage(data, "check")
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert loose(data) == []
