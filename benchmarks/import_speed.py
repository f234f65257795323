"""How fast is `cnncalc import`, from a cold process? Prints it as a multiple of building the model in torch.

Run: python3 benchmarks/import_speed.py [RUNS]   (default 5; needs torch, torchvision and timm; minutes on 2 cores)

Each pair is two fresh processes, run interleaved (import, baseline, import, baseline ...) after one untimed run
of each, timed as the median of RUNS: `cnncalc import` writing its spec to a temporary file, and a baseline
that imports torch and the model's package, builds the same model and runs one forward pass at the same
input under no_grad. Bytecode is cached as for an installed package (PYTHONDONTWRITEBYTECODE is dropped).
The claims to keep:

- `cnncalc import torchvision:resnet50 --input 3x224x224` <= 1.5x the baseline;
- `cnncalc import timm:create_model --arg model_name=efficientnet_b0 --input 3x224x224` <= 2x the baseline.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORWARD = "torch.no_grad().__enter__(); m(torch.zeros(1, 3, 224, 224))"
#: (label, modules the pair needs, cnncalc import's arguments before -o, the baseline program, goal)
PAIRS: list[tuple[str, tuple[str, ...], list[str], str, float]] = [
    (
        "torchvision:resnet50",
        ("torch", "torchvision"),
        ["torchvision:resnet50", "--input", "3x224x224"],
        f"import torch, torchvision; m = torchvision.models.resnet50(weights=None).eval(); {FORWARD}",
        1.5,
    ),
    (
        "timm efficientnet_b0",
        ("torch", "timm"),
        ["timm:create_model", "--arg", "model_name=efficientnet_b0", "--input", "3x224x224"],
        f'import torch, timm; m = timm.create_model("efficientnet_b0", pretrained=False).eval(); {FORWARD}',
        2.0,
    ),
]


def once(cmd: list[str]) -> float:
    """Wall seconds of one cold process; output to /dev/null."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTHONDONTWRITEBYTECODE")}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return seconds


def missing(modules: tuple[str, ...]) -> str | None:
    """The last line of the error importing ``modules`` in a fresh process, or None if they import."""
    probe = subprocess.run([sys.executable, "-c", f"import {', '.join(modules)}"], capture_output=True, check=False)
    if probe.returncode == 0:
        return None
    lines = probe.stderr.decode().strip().splitlines()
    return lines[-1] if lines else f"exit {probe.returncode}"


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(f"each the median of {runs} cold processes, interleaved with its baseline (import torch, build, one forward)")
    print(f"{'model':<22} {'import s':>9} {'baseline s':>11} {'ratio':>7}  goal")
    with tempfile.TemporaryDirectory() as tmp:
        for label, modules, args, program, goal in PAIRS:
            why = missing(modules)
            if why is not None:
                print(f"{label:<22} skipped: {', '.join(modules)} not importable ({why})")
                continue
            ours = [sys.executable, "-m", "cnncalc", "import", *args, "-o", str(Path(tmp) / "spec.yaml")]
            base = [sys.executable, "-c", program]
            try:
                once(ours)  # writes the bytecode cache, warms the file cache
                once(base)
                times: tuple[list[float], list[float]] = ([], [])
                for _ in range(runs):
                    times[0].append(once(ours))
                    times[1].append(once(base))
            except RuntimeError as error:
                print(f"{label:<22} failed: {error}")
                continue
            a, b = statistics.median(times[0]), statistics.median(times[1])
            verdict = "met" if a / b <= goal else "NOT met"
            print(f"{label:<22} {a:>9.3f} {b:>11.3f} {a / b:>6.2f}x  <= {goal}x: {verdict}")


if __name__ == "__main__":
    main()
