"""cnncalc.machine: the memory a model may take while it runs (Linux's MemAvailable, a container's cgroup limit)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnncalc import machine


def cgroup(tmp_path: Path, limit: str, usage: int, stat: str, v2: bool = True) -> tuple[str, str, str, str]:
    (tmp_path / "max").write_text(limit + "\n")
    (tmp_path / "current").write_text(f"{usage}\n")
    (tmp_path / "stat").write_text(stat)
    key = "inactive_file" if v2 else "total_inactive_file"
    return (str(tmp_path / "max"), str(tmp_path / "current"), str(tmp_path / "stat"), key)


@pytest.mark.parametrize(
    ("limit", "usage", "stat", "v2", "room"),
    [
        # a 4 GiB container using 3 GiB, 1 GiB of it page cache it could drop: 2 GiB left
        (str(4 * 2**30), 3 * 2**30, f"anon 123\ninactive_file {2**30}\n", True, 2 * 2**30),
        ("max", 3 * 2**30, "", True, None),  # no limit
        (str(2**63 - 4096), 2**30, "", False, None),  # v1's "no limit"
        (str(2**30), 2 * 2**30, "total_inactive_file 0\n", False, 0),  # over its limit already: nothing left
    ],
)
def test_a_containers_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str, usage: int, stat: str, v2: bool, room: int | None
) -> None:
    monkeypatch.setattr(machine, "CGROUPS", (cgroup(tmp_path, limit, usage, stat, v2),))
    assert machine._cgroup_room() == room


def test_the_free_memory_is_the_smaller_of_the_machines_and_the_containers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(machine, "CGROUPS", (cgroup(tmp_path, str(2**20), 0, ""),))
    if os.path.exists("/proc/meminfo"):
        assert machine.available_bytes() == 2**20
    monkeypatch.setattr(machine, "CGROUPS", ())
    free = machine.available_bytes()
    assert free is None or free > 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="the cap reads Linux's /proc")
def test_the_cap_is_set_while_inside_and_lifted_after(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    monkeypatch.setattr(machine, "available_bytes", lambda: 2**30)
    before = resource.getrlimit(resource.RLIMIT_AS)
    with machine.within_free_memory() as room:
        assert room == 2**30
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        assert soft != resource.RLIM_INFINITY
        with pytest.raises(MemoryError):
            bytearray(4 * 2**30)  # 4 GiB with 1 GiB of room
    assert resource.getrlimit(resource.RLIMIT_AS) == before


def test_out_of_memory_knows_the_allocators_words() -> None:
    assert machine.out_of_memory(MemoryError())
    assert machine.out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8"))
    assert not machine.out_of_memory(RuntimeError("shape mismatch"))
