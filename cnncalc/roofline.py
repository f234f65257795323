"""The roofline of a network on a device: per row, whether arithmetic or memory traffic bounds it.

Conventions (docs/roofline.md):

- FLOPs are the report's (2 x MACs of conv and linear; everything else 0, as FlopCounterMode).
- Bytes moved: a row reads each of its inputs once and its parameters (running statistics
  included) once, and writes its output once, all at the report's dtype. An activation fused into
  a conv or linear adds nothing; a view (``flatten``) and an identity (``dropout`` at inference)
  move nothing, unless they copy (a flatten of a channels-last tensor reads and writes it); the input row moves nothing (it is where the data starts).
- A row's time is ``max(FLOPs / peak, bytes / bandwidth)``; it is ``compute``-bound when
  ``FLOPs / peak >= bytes / bandwidth``, else ``memory``-bound. The network's time is the sum of
  its rows': no overlap between layers, no launch overhead, caches that hold nothing between rows.
  It is a lower bound, the ideal a kernel could reach, not a prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import prod

from .layers import row_kind
from .report import Report, Row


@dataclass(frozen=True)
class Device:
    """Published dense peaks (FLOP/s per dtype, no sparsity) and memory bandwidth (bytes/s)."""

    name: str
    peaks: dict[str, float]
    bandwidth: float
    source: str

    def peak(self, dtype: str) -> float:
        if dtype not in self.peaks:
            raise ValueError(f"{self.name} has no published {dtype} peak; give --peak")
        return self.peaks[dtype]


T = 1e12
#: float32 is the CUDA cores' FP32 peak (PyTorch's default matmul precision); float16 and bfloat16
#: the tensor cores' dense peak with FP32 accumulation; int8 the dense tensor-core peak (TOPS).
DEVICES: dict[str, Device] = {
    d.name.lower().replace(" ", "-"): d
    for d in (
        Device(
            "H100 SXM",
            {"float32": 66.9 * T, "float16": 989.4 * T, "bfloat16": 989.4 * T, "int8": 1978.9 * T},
            3.35e12,
            "NVIDIA H100 Tensor Core GPU datasheet (SXM5, dense)",
        ),
        Device(
            "H100 PCIe",
            {"float32": 51.2 * T, "float16": 756.5 * T, "bfloat16": 756.5 * T, "int8": 1513 * T},
            2.0e12,
            "NVIDIA H100 Tensor Core GPU datasheet (PCIe, dense)",
        ),
        Device(
            "H200",
            {"float32": 66.9 * T, "float16": 989.4 * T, "bfloat16": 989.4 * T, "int8": 1978.9 * T},
            4.8e12,
            "NVIDIA H200 Tensor Core GPU datasheet (SXM, dense)",
        ),
        Device(
            "A100 40GB",
            {"float32": 19.5 * T, "float16": 312 * T, "bfloat16": 312 * T, "int8": 624 * T},
            1.555e12,
            "NVIDIA A100 Tensor Core GPU datasheet (SXM4 40GB, dense)",
        ),
        Device(
            "A100 80GB",
            {"float32": 19.5 * T, "float16": 312 * T, "bfloat16": 312 * T, "int8": 624 * T},
            2.039e12,
            "NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB, dense)",
        ),
        Device(
            "L4",
            {"float32": 30.3 * T, "float16": 121 * T, "bfloat16": 121 * T, "int8": 242.5 * T},
            300e9,
            "NVIDIA L4 Tensor Core GPU datasheet (dense)",
        ),
        Device(
            "T4",
            {"float32": 8.1 * T, "float16": 65 * T, "int8": 130 * T},
            320e9,
            "NVIDIA T4 Tensor Core GPU datasheet (no bfloat16)",
        ),
        Device(
            "RTX 4090",
            {"float32": 82.6 * T, "float16": 165.2 * T, "bfloat16": 165.2 * T, "int8": 660.6 * T},
            1.008e12,
            "NVIDIA Ada GPU architecture whitepaper, GeForce RTX 4090 (dense, FP32 accumulate)",
        ),
    )
}


@dataclass(frozen=True)
class RoofRow:
    index: int
    name: str
    kind: str
    flops: int
    bytes: int
    #: FLOPs per byte moved; 0 when the row moves nothing
    intensity: float
    bound: str  # "compute", "memory", or "none" (a row that neither computes nor moves data)
    time_s: float


@dataclass(frozen=True)
class Roofline:
    device: str
    dtype: str
    peak_flops: float
    bandwidth: float
    rows: tuple[RoofRow, ...]

    @property
    def flops(self) -> int:
        return sum(r.flops for r in self.rows)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.rows)

    @property
    def time_s(self) -> float:
        return sum(r.time_s for r in self.rows)

    @property
    def memory_bound_share(self) -> float:
        """The share of the network's time spent in memory-bound rows."""
        total = self.time_s
        return sum(r.time_s for r in self.rows if r.bound == "memory") / total if total else 0.0

    @property
    def ridge(self) -> float:
        """The intensity (FLOPs per byte) above which a row is compute-bound."""
        return self.peak_flops / self.bandwidth


def bytes_moved(row: Row, rows: Sequence[Row], batch: int, dtype_bytes: int) -> int:
    """What one row reads (its inputs, its parameters) and writes (its output), in bytes."""
    # the input row and a folded row (layer None) move nothing of their own; nor a view or an identity,
    # unless it allocated (a flatten of a channels-last tensor copies it)
    if row.layer is None or (not row_kind(row.layer).moves_data and row.activations == 0):
        return 0
    values = sum(prod(rows[i].output_shape) for i in row.inputs) * batch + batch * prod(row.output_shape)
    return (values + row.params) * dtype_bytes


def roofline(report: Report, *, device: str, peak_flops: float, bandwidth: float, depth: int | None = None) -> Roofline:
    """The roofline of every row of ``report`` (folded to ``depth`` if given: a block's row sums its rows')."""
    if not (peak_flops > 0 and bandwidth > 0 and peak_flops < float("inf") and bandwidth < float("inf")):
        raise ValueError(f"peak and bandwidth must be positive and finite, got {peak_flops} and {bandwidth}")
    flat = [
        _row(r.index, r.name, r.kind, r.flops, bytes_moved(r, report.rows, report.batch, report.dtype_bytes),
             peak_flops, bandwidth)
        for r in report.rows
    ]  # fmt: skip
    if depth is None:
        return Roofline(device, report.dtype, peak_flops, bandwidth, tuple(flat))
    folded = report.folded(depth)
    starts = [r.index for r in folded.rows]
    out = []
    for n, head in enumerate(folded.rows):
        end = starts[n + 1] if n + 1 < len(starts) else len(flat)
        group = flat[head.index : end]
        if len(group) == 1:
            out.append(group[0])
            continue
        row = _row(head.index, head.name, head.kind, sum(g.flops for g in group), sum(g.bytes for g in group),
                   peak_flops, bandwidth)  # fmt: skip
        # a block's time is the sum of its rows' (each bounded on its own), not the bound of the sums
        time = sum(g.time_s for g in group)
        compute = sum(g.time_s for g in group if g.bound == "compute")
        out.append(RoofRow(row.index, row.name, row.kind, row.flops, row.bytes, row.intensity,
                           "compute" if compute >= time - compute and time else row.bound, time))  # fmt: skip
    return Roofline(device, report.dtype, peak_flops, bandwidth, tuple(out))


def _row(index: int, name: str, kind: str, flops: int, moved: int, peak: float, bandwidth: float) -> RoofRow:
    compute, memory = flops / peak, moved / bandwidth
    bound = "none" if flops == moved == 0 else "compute" if compute >= memory else "memory"
    return RoofRow(index, name, kind, flops, moved, flops / moved if moved else 0.0, bound, max(compute, memory))
