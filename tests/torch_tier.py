"""The torch-free tier: ``pytest -m "not torch"`` neither collects nor imports anything that loads torch.

A plugin (``-p torch_tier`` in pyproject) rather than a conftest, so that it covers the package's doctests too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

#: Modules that import torch as they load: the torch-free tier (-m "not torch") does not even collect them.
TORCH_MODULES = {
    "test_torch_backend.py",
    "test_torchvision.py",
    "test_receptive_field.py",
    "test_import.py",
    "test_import_zoo.py",
    "round_trip.py",
    "written_models.py",
    "torch_backend.py",
}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name in TORCH_MODULES and config.getoption("markexpr", "") == "not torch":
        return True
    return None


def pytest_sessionfinish(session: pytest.Session) -> None:
    # the torch-free tier proves the package works without torch: nothing in it may load torch
    if session.config.getoption("markexpr", "") == "not torch" and sys.modules.get("torch") is not None:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\nerror: the torch-free tier (-m 'not torch') imported torch", file=sys.stderr)
