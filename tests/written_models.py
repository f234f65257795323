"""Random PyTorch modules written as a person writes them, for the importer's property test.

A :class:`Program` runs a list of steps over a list of tensors (its registers): modules (convs, norms, pools,
ReLUs in place or not, dropout, an identity, a nested program as a block), functions and methods (``torch.relu``,
``F.relu(inplace=True)``, ``x.relu_()``, sigmoid, tanh, a mean, an interpolation), a squeeze-and-excitation gate,
a flatten-and-linear head, joins (``torch.cat``, ``+``,
``+=``, ``add_``, ``*``), ``torch.cat`` of one tensor, ``chunk``, products with a number (``x * 2.0``,
``x.mul_(0.5)``), and operations no kind describes (``cumsum``, ``exp``). Every choice that depends on a shape is made once, at construction, on a run of zeros,
so that ``forward`` is straight-line code.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

OPS = (
    "conv1", "conv3", "conv_s2", "bn", "relu_module", "relu_module_inplace", "maxpool", "avgpool", "dropout",
    "identity", "block", "torch_relu", "f_relu_inplace", "relu_", "sigmoid", "tanh", "mean", "interpolate",
    "cat", "cat_one", "chunk", "add", "iadd", "add_", "mul", "gate", "head", "times_two", "scale_",
)  # fmt: skip
#: Operations no kind describes: drawn now and then, so that most programs import.
REFUSED = ("cumsum", "exp")


class Program(nn.Module):
    """``steps`` of (operation, the registers it reads, its module's name); returns the registers ``outs``."""

    def __init__(self, draw: Any, channels: int, size: int, depth: int = 0) -> None:
        super().__init__()
        self.steps: list[tuple[str, tuple[int, ...], str | None]] = []
        regs = [torch.zeros(1, channels, size, size)]
        for i in range(draw(st.integers(1, 6))):
            ops = OPS if depth == 0 else tuple(o for o in OPS if o != "block")
            op = draw(st.sampled_from(REFUSED if draw(st.sampled_from([False] * 9 + [True])) else ops))
            # mostly the last tensor, as code reads (what no output is computed from is refused)
            a = len(regs) - 1 if draw(st.sampled_from([True, True, False])) else draw(st.integers(0, len(regs) - 1))
            if regs[a].dim() != 4:
                continue  # a head's features: what follows reads planes
            c, h = regs[a].shape[1], regs[a].shape[2]
            args: tuple[int, ...] = (a,)
            module = self.module(draw, op, c, h, depth)
            if op in ("cat", "add", "iadd", "add_", "mul"):
                joinable = [j for j, r in enumerate(regs) if r.shape[2:] == regs[a].shape[2:]]
                if op != "cat":
                    joinable = [j for j in joinable if regs[j].shape == regs[a].shape]
                args = (a, draw(st.sampled_from(joinable)))
            elif module is None and (op in ("conv_s2", "maxpool", "avgpool") or (op == "chunk" and c % 2)):
                continue  # a plane of one row, or channels that do not halve
            name = f"m{i}" if module is not None else None
            if module is not None:
                self.add_module(f"m{i}", module.eval())
            self.steps.append((op, args, name))
            with torch.no_grad():
                regs += self.run(op, [regs[j] for j in args], module)
        self.outs: tuple[int, ...] = (len(regs) - 1,)  # the last tensor; a block's always
        if not depth and draw(st.booleans()):
            self.outs = tuple(sorted({*draw(st.lists(st.integers(0, len(regs) - 1), min_size=1, max_size=2))}))

    @staticmethod
    def module(draw: Any, op: str, c: int, h: int, depth: int) -> nn.Module | None:
        out = draw(st.integers(1, 4))
        made: dict[str, Any] = {
            "conv1": lambda: nn.Conv2d(c, out, 1, bias=draw(st.booleans())),
            "conv3": lambda: nn.Conv2d(c, out, 3, padding=1),
            "conv_s2": lambda: nn.Conv2d(c, out, 3, stride=2, padding=1) if h >= 2 else None,
            "bn": lambda: nn.BatchNorm2d(c),
            "relu_module": nn.ReLU,
            "relu_module_inplace": lambda: nn.ReLU(inplace=True),
            "maxpool": lambda: nn.MaxPool2d(2) if h >= 2 else None,
            "avgpool": lambda: nn.AvgPool2d(2) if h >= 2 else None,
            "dropout": lambda: nn.Dropout(0.5),
            "identity": nn.Identity,
            "block": lambda: Program(draw, c, h, depth + 1),
            "gate": lambda: Gate(c),
            "head": lambda: Head(c, h, out),
        }
        return made[op]() if op in made else None

    @staticmethod
    def run(op: str, xs: list[torch.Tensor], module: nn.Module | None) -> list[torch.Tensor]:
        x = xs[0]
        if module is not None:
            return [module(x)]
        if op == "iadd":
            y = xs[0]
            y += xs[1]
            return [y]
        if op == "chunk":
            a, b = x.chunk(2, dim=1)
            return [a, b]
        functions = {
            "torch_relu": lambda: torch.relu(x),
            "f_relu_inplace": lambda: F.relu(x, inplace=True),
            "relu_": lambda: x.relu_(),
            "sigmoid": lambda: x.sigmoid(),
            "tanh": lambda: torch.tanh(x),
            "mean": lambda: x.mean((2, 3), keepdim=True),
            "interpolate": lambda: F.interpolate(x, scale_factor=2, mode="nearest"),
            "cat": lambda: torch.cat([xs[0], xs[1]], 1),
            "cat_one": lambda: torch.cat([x], 1),
            "add": lambda: xs[0] + xs[1],
            "add_": lambda: xs[0].add_(xs[1]),
            "mul": lambda: xs[0] * xs[1],
            "cumsum": lambda: x.cumsum(1),
            "times_two": lambda: x * 2.0,
            "scale_": lambda: x.mul_(0.5),
            "exp": lambda: x.exp(),
        }
        return [functions[op]()]

    def extra_repr(self) -> str:
        """The steps and the outputs, so that a failing example shows its program."""
        return f"steps={self.steps}, outs={self.outs}"

    def forward(self, x: torch.Tensor) -> Any:
        regs = [x]
        for op, args, name in self.steps:
            regs += self.run(op, [regs[j] for j in args], getattr(self, name) if name else None)
        outs = [regs[j] for j in self.outs]
        return outs[0] if len(outs) == 1 else tuple(outs)


class Gate(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(conv(mean(x)))``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))


class Head(nn.Module):
    """A classifier: flatten, then a linear layer; its N x F output ends the program's planes."""

    def __init__(self, c: int, h: int, out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(c * h * h, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x, 1))


@st.composite
def programs(draw: Any) -> tuple[Program, tuple[int, int, int]]:
    """A random :class:`Program` in eval mode, and the C x H x W input it was built for."""
    c, size = draw(st.integers(1, 4)), draw(st.sampled_from([2, 4, 8]))
    return Program(draw, c, size).eval(), (c, size, size)
