import os
import pathlib

import pytest

#: Repository root (python/tests/../..).
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(autouse=True)
def _in_root(monkeypatch):
    # Setups are found by name under ./setups or the source tree the package
    # was built from; run from the repository root like the CLI.
    monkeypatch.chdir(ROOT)
    yield


def powergrid_binary():
    """The release binary `cargo build --release` / `cargo test --release` made."""
    exe = ROOT / "target" / "release" / ("powergrid.exe" if os.name == "nt" else "powergrid")
    return exe if exe.is_file() else None
