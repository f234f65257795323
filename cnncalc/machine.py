"""This machine's memory, while a model runs on it: an allocation past what is free fails, and is said in one line.

On Linux the kernel lets a process ask for more memory than there is and kills it when the pages are
touched (``cnncalc import`` at a mistyped ``--input 3x22400x22400``, ``cnncalc profile`` at a huge batch):
no message, no exit code a script can read. While a command runs a model, the process's address space
is capped at what it holds plus the memory the machine has available, so that such an allocation fails
at once (PyTorch raises ``RuntimeError: ... can't allocate memory``) and the command says so. Where the
cap cannot be set (not Linux, or a tighter limit already) nothing changes.
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


def available_bytes() -> int | None:
    """The memory the machine can give without swapping (Linux's MemAvailable), or None where unknown."""
    kib = _meminfo_kib("/proc/meminfo", "MemAvailable")
    return None if kib is None else kib * 1024


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
