"""The geometry rule shared by convolution and pooling, and what to say when it does not fit."""

from __future__ import annotations


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """The span a dilated kernel covers: D * (F - 1) + 1.

    >>> effective_kernel(3, dilation=2)
    5
    """
    return dilation * (kernel - 1) + 1


def output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Output length along one axis, exactly as PyTorch computes it for conv and pooling.

    ``floor((W + 2P - D*(F - 1) - 1) / S) + 1``, which is CS231n's ``(W - F + 2P)/S + 1``
    when D = 1. With ``ceil_mode`` (pooling) the division rounds up, but a last
    window that would start inside the right padding is dropped
    (``pooling_output_shape`` in ATen's Pool.h).

    >>> output_size(7, 3, stride=2)
    3
    >>> output_size(227, 11, stride=4)
    55
    >>> output_size(112, 3, stride=2, ceil_mode=True)
    56
    >>> output_size(5, 2, stride=2, padding=1, ceil_mode=True)
    3
    """
    span = size + 2 * padding - effective_kernel(kernel, dilation)
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's (and Keras') "same" padding along one axis: the output is ceil(size / stride), and the padding
    that gives it, max((out - 1)·S + D·(F − 1) + 1 − W, 0), is split with the larger half after (bottom, right);
    at stride 1 it is PyTorch's ``padding='same'``.

    >>> same_padding(224, 3, 2), same_padding(225, 3, 2), same_padding(7, 1, 2), same_padding(8, 4, 1)
    ((0, 1), (1, 1), (0, 0), (1, 2))
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + effective_kernel(kernel, dilation) - size, 0)
    return total // 2, total - total // 2


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def misfit(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, *, pool: bool = False) -> str | None:
    """Why (W - F + 2P)/S is not whole, with the nearest settings that fit; None when nothing real is lost.

    ``kernel`` is the kernel size before dilation. When the division is not whole, PyTorch
    drops the last ``(W - F + 2P) mod S`` rows of the padded input. That matters only when
    real input is among them (not just padding) and the loss is larger than the gap the stride
    leaves between windows anyway (``S - F`` rows, when the stride exceeds the kernel): a 1x1
    conv at stride 2 skips every odd row by design, the last one included.

    >>> print(misfit(7, 3, 3, 0))
    (7 - 3 + 0) / 3 = 1.33 is not a whole number: the filter does not fit. PyTorch rounds down to 1, so the output is 2 and the last 1 row(s) of the padded input are never read. Fits: padding 1; stride 2; input 6 or 9
    >>> misfit(224, 7, 2, 3) is None  # ResNet's stem: only a padding row is left unread
    True
    >>> misfit(56, 1, 2, 0) is None  # a 1x1 projection at stride 2 skips odd rows by design
    True
    >>> misfit(224, 11, 4, 0)[:40]  # AlexNet on 224 loses a real pixel
    '(224 - 11 + 0) / 4 = 53.25 is not a whol'
    """
    eff = effective_kernel(kernel, dilation)
    span = size - eff + 2 * padding
    if span < 0 or span % stride == 0:
        return None
    skipped = span % stride
    if skipped - padding <= max(0, stride - eff):  # only padding, or no more than the stride skips anyway
        return None
    text = (
        f"({size} - {eff} + {2 * padding}) / {stride} = {_num(span / stride)} is not a whole number: "
        f"the {'window' if pool else 'filter'} does not fit. PyTorch rounds down to {span // stride}, so the output is "
        f"{span // stride + 1} and the last {skipped} row(s) of the padded input are never read"
    )
    return f"{text}. Fits: {'; '.join(_fits(size, eff, stride, padding, kernel, pool))}"


#: How far from the given padding and stride to look for ones that fit (keeps huge values cheap).
_SEARCH = 64


def _fits(size: int, eff: int, stride: int, padding: int, kernel: int, pool: bool) -> list[str]:
    options = []
    max_pad = min(kernel // 2, eff // 2) if pool else eff - 1
    near = range(max(0, padding - _SEARCH), min(max_pad, padding + _SEARCH) + 1)
    pads = [p for p in near if (size - eff + 2 * p) % stride == 0 and size - eff + 2 * p >= 0]
    if pads:
        options.append("padding " + " or ".join(str(p) for p in sorted(pads, key=lambda p: abs(p - padding))[:2]))
    span = size - eff + 2 * padding
    # a stride beyond the kernel would skip pixels: suggest only strides up to it
    top = min(span, eff)
    lower = [s for s in range(min(stride - 1, top), max(0, stride - _SEARCH), -1) if span % s == 0][:1]
    upper = [s for s in range(stride + 1, min(top, stride + _SEARCH) + 1) if span % s == 0][:1]
    if lower or upper:
        options.append("stride " + " or ".join(str(s) for s in lower + upper))
    below, above = size - span % stride, size + stride - span % stride
    inputs = [str(n) for n in (below, above) if n + 2 * padding >= eff]
    options.append("input " + " or ".join(inputs))
    if pool:
        options.append("ceil_mode: true")
    return options
