"""How fast is `cnncalc summary`? Prints load, analyze and render times per shipped spec.

Run: python3 benchmarks/engine_speed.py [REPEATS]   (no torch needed)
The claim to keep: every shipped spec, ResNet-152's 466 rows included, is analysed in well
under a second, so `summary` feels instant.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console

from cnncalc import analyze, load_spec
from cnncalc.commands.summary import print_table

SPECS = Path(__file__).resolve().parent.parent / "specs"


def best(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(f"{'spec':<18} {'rows':>5} {'load ms':>9} {'analyze ms':>11} {'render ms':>10} {'us/row':>8}")
    per_row = []
    for path in sorted(SPECS.glob("*.yaml")):
        spec = load_spec(path)
        report = analyze(spec)
        load = best(lambda: load_spec(path), repeats)  # noqa: B023
        walk = best(lambda: analyze(spec), repeats)  # noqa: B023
        render = best(lambda: print_table(report, Console(file=io.StringIO(), width=120)), repeats)  # noqa: B023
        rows = len(report.rows)
        per_row.append(1e6 * walk / rows)
        print(
            f"{path.stem:<18} {rows:>5} {1e3 * load:>9.2f} {1e3 * walk:>11.2f} {1e3 * render:>10.2f} {per_row[-1]:>8.1f}"
        )
    print(f"median analyze cost per row: {statistics.median(per_row):.1f} us (best of {repeats})")


if __name__ == "__main__":
    main()
