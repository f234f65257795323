"""Small builders shared by the tests."""

from __future__ import annotations

from typing import Any

import yaml

from cnncalc import Report, Spec, analyze, parse_spec


def spec_of(layers: list[Any], input: list[int] | str = (3, 32, 32), **extra: Any) -> Spec:  # type: ignore[assignment]
    return parse_spec(
        {"name": "t", "input": list(input) if not isinstance(input, str) else input, "layers": layers, **extra}
    )


def report_of(layers: list[Any], input: Any = (3, 32, 32), **kwargs: Any) -> Report:
    return analyze(spec_of(layers, input), **kwargs)


def yaml_text(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def hwc(text: str) -> tuple[int, int, int]:
    """'55x55x96' (the lectures' H x W x C) -> (C, H, W)."""
    h, w, c = (int(x) for x in text.split("x"))
    return (c, h, w)
