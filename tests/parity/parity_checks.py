"""Independent checks the fixture generator applies to what transformers produced: RoPE frequencies
recomputed from the formulas in NumPy, attention-mask shape, greedy margins, the safetensors header."""

import json
import math
import struct

import numpy as np


def expected_inv_freq(rope, head_dim, max_position_embeddings, seq_len):
    """RoPE inverse frequencies for one forward of seq_len tokens, in float64 from the published formulas."""
    theta = float(rope["rope_theta"])
    dim = head_dim
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind == "dynamic":
        # NTK-aware dynamic scaling: the base grows once the sequence exceeds max_position_embeddings.
        length = max(seq_len, max_position_embeddings)
        factor = float(rope["factor"])
        theta = theta * ((factor * length / max_position_embeddings) - (factor - 1)) ** (dim / (dim - 2))
    inv = 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    if kind == "linear":
        inv = inv / float(rope["factor"])
    elif kind == "llama3":
        factor = float(rope["factor"])
        low, high = float(rope["low_freq_factor"]), float(rope["high_freq_factor"])
        old_len = float(rope["original_max_position_embeddings"])
        low_wavelen, high_wavelen = old_len / low, old_len / high
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        inv = np.where(medium, smoothed, scaled)
    elif kind not in ("default", "dynamic"):
        raise ValueError(f"no reference formula for rope_type {kind!r}")
    return inv


def llama3_regimes(rope, head_dim):
    """How many frequencies llama3 scaling keeps, smooths and divides: all three must be non-empty."""
    inv = 1.0 / float(rope["rope_theta"]) ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * math.pi / inv
    old_len = float(rope["original_max_position_embeddings"])
    low_wavelen = old_len / float(rope["low_freq_factor"])
    high_wavelen = old_len / float(rope["high_freq_factor"])
    kept = int((wavelen < high_wavelen).sum())
    divided = int((wavelen > low_wavelen).sum())
    return {"kept": kept, "smoothed": len(inv) - kept - divided, "divided": divided}


def attention_problems(attn, sliding_window=None):
    """attn [layers, heads, N, N]: rows sum to 1, nothing above the diagonal, window respected."""
    problems = []
    n = attn.shape[-1]
    sums = attn.sum(-1)
    if np.abs(sums - 1).max() > 1e-5:
        problems.append(f"attention rows sum to {sums.min()}..{sums.max()}, expected 1")
    future = np.triu(np.ones((n, n), dtype=bool), 1)
    if np.abs(attn[..., future]).max() > 0:
        problems.append("attention to future positions is not zero")
    if sliding_window is not None:
        q = np.arange(n)[:, None]
        k = np.arange(n)[None, :]
        outside = k <= q - sliding_window  # keys older than the window (kv_idx > q_idx - window is kept)
        if outside.any() and np.abs(attn[..., outside]).max() > 0:
            problems.append(f"attention outside sliding window {sliding_window} is not zero")
        inside = (k <= q) & ~outside
        if (attn[..., inside] == 0).any():
            problems.append(f"some keys inside sliding window {sliding_window} got exactly zero weight")
    return problems


def top2_margin(step_logits):
    """Smallest gap between the best and second-best logit over greedy steps (robustness to 1e-5 noise)."""
    margins = []
    for row in step_logits:
        top = np.sort(np.asarray(row, dtype=np.float64))[-2:]
        margins.append(float(top[1] - top[0]))
    return min(margins) if margins else float("inf")


def safetensors_dtypes(path):
    """{tensor name: dtype string} read straight from the safetensors header, not through the library."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}


def rel_max_diff(a, b):
    """max |a-b| relative to max |b|, the tolerance the C++ parity tests use for logits."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
