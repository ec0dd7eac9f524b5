"""Pixels of the model input ↔ tokens of a stage (plain Python): where a clicked or shared query lands."""

from __future__ import annotations


def token_of_pixel(pixel: tuple[int, int], stage_hw: tuple[int, int], stride: int) -> tuple[int, int]:
    """Pixel ``(y, x)`` of the model input → token ``(h, w)`` of a stage with ``stride`` px per token."""
    y, x = pixel
    H, W = stage_hw
    return min(max(int(y) // stride, 0), H - 1), min(max(int(x) // stride, 0), W - 1)


def pixel_of_token(token: tuple[int, int], stride: int) -> tuple[int, int]:
    """Centre pixel ``(y, x)`` of token ``(h, w)``."""
    return int(token[0]) * stride + stride // 2, int(token[1]) * stride + stride // 2
