"""This machine's memory, while a model runs on it: an allocation past what is free fails, and is said in one line.

On Linux the kernel lets a process ask for more memory than there is and kills it when the pages are
touched (``cnncalc import`` at a mistyped ``--input 3x22400x22400``, ``cnncalc profile`` at a huge batch):
no message, no exit code a script can read. While a command runs a model, the process's address space
is capped at what it holds plus the memory the machine has available (or its container, where a cgroup
limit leaves less), so that such an allocation fails at once (PyTorch raises ``RuntimeError: ... can't
allocate memory``) and the command says so. Where the cap cannot be set (not Linux, or a tighter limit
already) nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _meminfo_kib(path: str, key: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


#: Where a container's memory limit is read: cgroup v2 (limit, usage, stat), then v1.
CGROUPS = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat", "inactive_file"),
    (
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        "/sys/fs/cgroup/memory/memory.stat",
        "total_inactive_file",
    ),
)


def _cgroup_room() -> int | None:
    """What the process's container may still take (its limit less what it uses, less the page cache it could
    drop, as ``docker stats`` counts), or None without a limit."""
    for limit_path, usage_path, stat_path, inactive in CGROUPS:
        try:
            text = Path(limit_path).read_text().strip()
            if text == "max":
                return None
            limit, usage = int(text), int(Path(usage_path).read_text())
        except (OSError, ValueError):
            continue
        if limit >= 2**60:  # v1's "no limit" is a number near 2^63
            return None
        cache = 0
        try:
            for line in Path(stat_path).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == inactive:
                    cache = int(value)
        except (OSError, ValueError):
            pass
        return max(0, limit - (usage - cache))
    return None


def available_bytes() -> int | None:
    """The memory the machine can give without swapping (Linux's MemAvailable), or less where a container's limit
    leaves less; None where unknown."""
    kib = _meminfo_kib("/proc/meminfo", "MemAvailable")
    free = None if kib is None else kib * 1024
    room = _cgroup_room()
    if room is not None:
        free = room if free is None else min(free, room)
    return free


def _address_space_bytes() -> int | None:
    kib = _meminfo_kib("/proc/self/status", "VmSize")
    return None if kib is None else kib * 1024


@contextmanager
def within_free_memory() -> Iterator[int | None]:
    """Cap the address space at its size now plus the available memory; yields the headroom in bytes (None:
    no cap was set). The previous limit is restored on the way out."""
    try:
        import resource
    except ImportError:  # not a Unix
        yield None
        return
    free, size = available_bytes(), _address_space_bytes()
    if free is None or size is None:
        yield None
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + free
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft != resource.RLIM_INFINITY and soft <= limit:
        yield None  # someone set a tighter cap already
        return
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):
        yield None
        return
    try:
        yield free
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation the machine could not give (Python's or PyTorch's CPU allocator)."""
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))
