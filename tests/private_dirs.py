"""Folders for embedded servers outside pytest's temporary root.

Run as root, the embedded PostgreSQL runs as its own system user, which must traverse every folder
above its data folder (EmbeddedServers opens them). Every pytest session that starts on the machine
resets its root (`pytest-of-<user>`) to 0700: another run starting meanwhile made `initdb` fail
("could not open file .../global/pg_control: Permission denied") or `pg_ctl start` wait until its
timeout on a PID file it could no longer read, and `serve` exit during start-up. These folders sit
beside that root, not in it, and are removed after use.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def private_dir(prefix: str = "exodrive-test-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
