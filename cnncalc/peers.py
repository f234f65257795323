"""What other tools print for the same network, and why it differs from cnncalc's MACs.

The tools users compare cnncalc with each count "compute" their own way. Each layer kind says what each tool counts for its rows
(``peer_terms`` in :mod:`cnncalc.layers`, read in the tool's source); each function here sums one
tool's terms (version named) and says what they are, so that a user can see which convention a
number follows. ``tests/test_peers.py`` runs the tools
themselves on every shipped spec and checks these figures exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .layers import row_kind
from .report import Report


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


def _count(report: Report, tool: str, label: str, rule: str, *terms: tuple[str, int], **unnamed: int) -> PeerCount:
    """``unnamed``: terms a kind gave that the tool's list does not describe; a kind's mistake, never dropped."""
    if unnamed:
        raise ValueError(f"{tool}: terms no one describes: {', '.join(sorted(unnamed))}")
    return PeerCount(tool, label, rule, report.totals.macs, tuple(t for t in terms if t[1]))


def _terms(report: Report, tool: str) -> dict[str, int]:
    """What ``tool`` counts beyond cnncalc's MACs, summed over the rows by term: each row's kind says its terms."""
    out: dict[str, int] = {}
    for r in report.rows:
        if r.layer is None:  # the input row
            continue
        for key, n in row_kind(r.layer).peer_terms(r.layer, r, report.batch).get(tool, {}).items():
            out[key] = out.get(key, 0) + n
    return out


def _torchinfo(report: Report) -> PeerCount:
    t = _terms(report, "torchinfo")
    return _count(
        report,
        "torchinfo 1.8",
        "Total mult-adds",
        "every parameter times the output positions it is used at (convs) or the batch (other layers)",
        ("conv and linear biases, one per output value", t.pop("bias", 0)),
        ("norms: batch x their weights and biases", t.pop("norm", 0)),
        ("PReLU: batch x its slopes", t.pop("prelu", 0)),
        ("linear over channels: its weights once per image, not at each position", t.pop("positions", 0)),
        ("transposed convs: counted at the output positions, not the input ones", t.pop("transposed", 0)),
        ("a blur pool's conv, run by a module without parameters: 0", t.pop("unhooked", 0)),
        **t,
    )


def _thop(report: Report) -> PeerCount:
    t = _terms(report, "thop")
    return _count(
        report,
        "thop 0.1.1",
        "MACs (thop.profile)",
        "conv and linear without bias; batch norm, average pooling and softmax counted; other layers 0",
        ("norms: 2 per value, 4 with affine (group norm: 0)", t.pop("norm", 0)),
        ("PReLU: 1 per value", t.pop("prelu", 0)),
        ("average pooling: 1 per output value (adaptive: the window + 1)", t.pop("pool", 0)),
        ("softmax: exp, add, divide per value", t.pop("softmax", 0)),
        ("upsampling: 1 per output value, 11 bilinear", t.pop("resample", 0)),
        ("transposed convs: counted at the output positions, not the input ones", t.pop("transposed", 0)),
        ("convs in modules it has no hook for (std_conv2d, blur_pool2d): 0", t.pop("unhooked", 0)),
        **t,
    )


def _ptflops(report: Report) -> PeerCount:
    """ptflops' default ``pytorch`` backend: module hooks, plus patched functionals that count again.

    nn.ReLU calls F.relu and the pooling modules call F.*_pool*, which ptflops also counts:
    their elements count twice. ReLU6 (F.hardtanh) and LeakyReLU are hooked only once.
    """
    t = _terms(report, "ptflops")
    return _count(
        report,
        "ptflops 0.7",
        "GMac (backend pytorch)",
        "conv and linear with bias, activations, pooling and norms; ReLU and pooling counted twice",
        ("conv and linear biases, one per output value", t.pop("bias", 0)),
        ("activations: 1 per value, 2 for ReLU (module and F.relu)", t.pop("act", 0)),
        ("pooling: 2 per input value (module and functional)", t.pop("pool", 0)),
        ("norms: 1 per value, 2 with affine (layer norm: 1)", t.pop("norm", 0)),
        ("local response norm: its functional ops", t.pop("other", 0)),
        ("upsampling: 2 per output value (module and F.interpolate)", t.pop("resample", 0)),
        ("convs in modules it has no hook for (std_conv2d, blur_pool2d): 0", t.pop("unhooked", 0)),
        **t,
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
