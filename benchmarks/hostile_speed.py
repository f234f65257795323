"""How long, and how much memory, does each hostile input take? One `cnncalc` process per case.

Run: python3 benchmarks/hostile_speed.py   (no torch needed; about a minute)
The claim to keep (docs/validate.md): every case ends in its clear line within a second or two and
300 MB. The tests check that each case ends and what it says; only this script times them. Cases
are those of tests/test_validate.py and tests/test_graph.py, and larger ones that the tests keep
small (50,000 unknown keys, a 10,000-branch concat, files of 1 MB).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_graph import HOSTILE_BLOCKS  # noqa: E402
from test_validate import HOSTILE, HOSTILE_VALID  # noqa: E402

SPEC = b"name: t\ninput: [3, 8, 8]\n"
LARGER: dict[str, bytes] = {
    "50,000 unknown keys": SPEC + b"layers: [relu]\n" + b"".join(f"k{i}: 1\n".encode() for i in range(50_000)),
    "a 10,000-branch concat": SPEC
    + b"layers:\n  - {kind: concat, branches: ["
    + b", ".join([b"[relu]"] * 10_000)
    + b"]}\n",
    "1 MB of values": SPEC + b"notes: [" + b", ".join([b"1"] * 300_000)[:999_000] + b"]\nlayers: [relu]\n",
    "1 MB of brackets in text": SPEC + b"notes: ['" + b"[" * 999_000 + b"']\nlayers: [relu]\n",
}

LIMIT_S, LIMIT_MB = 2.0, 300


def run(args: list[str]) -> tuple[int, float, float]:
    """Exit code, seconds and peak memory (MB) of one cnncalc process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnncalc", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "120"},
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - start, usage.ru_maxrss / 1024  # ru_maxrss is in kB on Linux


def main() -> None:
    cases = {
        **{k: v[0] for k, v in HOSTILE.items()},
        **{k: SPEC + v[0].encode() for k, v in HOSTILE_BLOCKS.items()},
        **HOSTILE_VALID,
        **LARGER,
    }
    print(f"{'case':<58} {'command':<9} {'exit':>4} {'s':>6} {'MB':>6}")
    slow = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hostile.yaml"
        for name, raw in cases.items():
            path.write_bytes(raw)
            for command in ("validate", "summary"):
                code, seconds, mb = run([command, str(path)])
                flag = "  <-- over" if seconds > LIMIT_S or mb > LIMIT_MB else ""
                print(f"{name[:58]:<58} {command:<9} {code:>4} {seconds:>6.2f} {mb:>6.0f}{flag}")
                if flag:
                    slow.append(name)
        code, seconds, mb = run(["validate", "/proc/**/*.yaml"])
        print(f"{'a glob over /proc':<58} {'validate':<9} {code:>4} {seconds:>6.2f} {mb:>6.0f}")
    print(f"\n{len(slow)} case(s) over {LIMIT_S} s or {LIMIT_MB} MB" + (f": {', '.join(slow)}" if slow else ""))


if __name__ == "__main__":
    main()
