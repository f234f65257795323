"""What other tools print for the same network, and why it differs from cnncalc's MACs.

The tools users compare cnncalc with each count "compute" their own way. Each function here
applies one tool's rules (read in its source, version named) to a report's rows, so that a
user can see which convention a number follows. ``tests/test_peers.py`` runs the tools
themselves on every shipped spec and checks these figures exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod

from .report import Join, Report, Row
from .spec import (
    LRN,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    GlobalAvgPool2d,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    ReLU6,
    Softmax,
)


@dataclass(frozen=True)
class PeerCount:
    """One tool's figure for a network: cnncalc's MACs plus the terms the tool adds to them."""

    tool: str
    label: str
    rule: str
    macs: int
    terms: tuple[tuple[str, int], ...]  # (what, how much) beyond cnncalc's MACs, only those not 0

    @property
    def value(self) -> int:
        return self.macs + sum(n for _, n in self.terms)


def _count(report: Report, tool: str, label: str, rule: str, *terms: tuple[str, int]) -> PeerCount:
    return PeerCount(tool, label, rule, report.totals.macs, tuple(t for t in terms if t[1]))


def _fused(row: Row) -> str | None:
    """The activation fused into a conv, linear or add row, if any."""
    return row.layer.activation if isinstance(row.layer, Conv2d | Linear | Join) else None


def _bias_positions(row: Row, batch: int) -> int:
    """Values a layer's bias is added to: every output value of a conv or linear with a bias."""
    return batch * prod(row.output_shape) if row.biases else 0


def _torchinfo(report: Report) -> PeerCount:
    n = report.batch
    bias = sum(_bias_positions(r, n) for r in report.rows if isinstance(r.layer, Conv2d | Linear))
    norm = sum(n * r.params_trainable for r in report.rows if isinstance(r.layer, BatchNorm2d | BatchNorm1d))
    return _count(
        report,
        "torchinfo 1.8",
        "Total mult-adds",
        "every parameter times the output positions it is used at (convs) or the batch (other layers)",
        ("conv and linear biases, one per output value", bias),
        ("batch norm: batch x its weights and biases", norm),
    )


def _adaptive_thop(row: Row, batch: int) -> int:
    """thop's adaptive average: (input / output size per axis, multiplied, + 1) per output value, in floats."""
    _, h, w = row.input_shape or (0, 0, 0)
    _, oh, ow = row.output_shape
    kernel = (h / oh) * (w / ow)
    return int((kernel + 1) * (batch * prod(row.output_shape)))


def _thop(report: Report) -> PeerCount:
    n = report.batch
    norm = pool = softmax = 0
    for r in report.rows:
        numel = n * prod(r.output_shape)
        match r.layer:
            case BatchNorm2d() | BatchNorm1d():
                norm += numel * (4 if r.layer.affine else 2)
            case AvgPool2d():
                pool += numel
            case AdaptiveAvgPool2d() | GlobalAvgPool2d():
                pool += _adaptive_thop(r, n)
        if isinstance(r.layer, Softmax) or _fused(r) == "softmax":
            features = r.output_shape[0]
            softmax += numel // features * (3 * features - 1)
    return _count(
        report,
        "thop 0.1.1",
        "MACs (thop.profile)",
        "conv and linear without bias; batch norm, average pooling and softmax counted; other layers 0",
        ("batch norm: 2 per value, 4 with affine", norm),
        ("average pooling: 1 per output value (adaptive: the window + 1)", pool),
        ("softmax: exp, add, divide per value", softmax),
    )


def _ptflops(report: Report) -> PeerCount:
    """ptflops' default ``pytorch`` backend: module hooks, plus patched functionals that count again.

    nn.ReLU calls F.relu and the pooling modules call F.*_pool*, which ptflops also counts:
    their elements count twice. ReLU6 (F.hardtanh) and LeakyReLU are hooked only once.
    """
    n = report.batch
    bias = act = pool = norm = other = 0
    for r in report.rows:
        out = n * prod(r.output_shape)
        inp = n * prod(r.input_shape) if r.input_shape else 0
        layer = r.layer
        act += {"relu": 2 * out, "relu6": out, "leaky_relu": out, "softmax": out}.get(_fused(r) or "", 0)
        match layer:
            case Conv2d() | Linear():
                bias += _bias_positions(r, n)
            case ReLU():
                act += 2 * out
            case ReLU6() | LeakyReLU():
                act += out
            case MaxPool2d() | AvgPool2d() | AdaptiveAvgPool2d() | AdaptiveMaxPool2d() | GlobalAvgPool2d():
                pool += 2 * inp
            case BatchNorm2d() | BatchNorm1d():
                norm += inp * (2 if layer.affine else 1)
            case Softmax():
                act += inp
            case LRN():
                # F.local_response_norm's x * x, avg_pool3d over the padded squares, * alpha and + k
                c, h, w = r.input_shape or (0, 0, 0)
                other += 3 * out + n * (c + layer.size - 1) * h * w
    return _count(
        report,
        "ptflops 0.7",
        "GMac (backend pytorch)",
        "conv and linear with bias, activations, pooling and norms; ReLU and pooling counted twice",
        ("conv and linear biases, one per output value", bias),
        ("activations: 1 per value, 2 for ReLU (module and F.relu)", act),
        ("pooling: 2 per input value (module and functional)", pool),
        ("batch norm: 1 per value, 2 with affine", norm),
        ("local response norm: its functional ops", other),
    )


def _torchvision(report: Report) -> PeerCount:
    rule = "multiply-accumulates of conv and linear, bias excluded: cnncalc's MACs"
    return _count(report, "torchvision", '"GFLOPS" in its model tables', rule)


def _flop_counter(report: Report) -> PeerCount:
    rule = "2 FLOPs per multiply-accumulate of conv and linear; everything else 0: cnncalc's FLOPs"
    return _count(
        report, "torch.utils.flop_counter", "FlopCounterMode total", rule, ("a second FLOP per MAC", report.totals.macs)
    )


#: Every tool, in the order the table lists them.
PEERS: tuple[Callable[[Report], PeerCount], ...] = (_torchvision, _flop_counter, _torchinfo, _ptflops, _thop)


def peer_counts(report: Report) -> list[PeerCount]:
    return [peer(report) for peer in PEERS]
