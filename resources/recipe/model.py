"""A small Llama in plain PyTorch, numerically the same as transformers' LlamaForCausalLM (eager).

Two attention paths: `fast` (scaled_dot_product_attention, used for training) and eager (explicit
softmax, used for evaluation), which can return attention probabilities and mask query heads.
Saved in Hugging Face Llama format so transformers, and later HeadScope, load it unchanged.
"""
import json
import math
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class LlamaShape:
    vocab_size: int = 3072
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 8
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    max_position_embeddings: int = 4096
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    bos_token_id: int = 1
    eos_token_id: int = 2

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        # Same order of operations as LlamaRMSNorm: normalise in float32, cast back, then scale.
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_tables(shape, n, device):
    inv = 1.0 / (shape.rope_theta ** (torch.arange(0, shape.head_dim, 2, device=device).float() / shape.head_dim))
    freqs = torch.outer(torch.arange(n, device=device).float(), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


class Attention(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        self.drop_head = 0.0  # DropHead (Zhou et al. 2020): probability of zeroing a head's output, training only
        hd = s.head_dim
        self.q_proj = nn.Linear(s.hidden_size, s.num_attention_heads * hd, bias=False)
        self.k_proj = nn.Linear(s.hidden_size, s.num_key_value_heads * hd, bias=False)
        self.v_proj = nn.Linear(s.hidden_size, s.num_key_value_heads * hd, bias=False)
        self.o_proj = nn.Linear(s.num_attention_heads * hd, s.hidden_size, bias=False)

    def forward(self, x, cos, sin, fast, head_mask=None, mask_from=0):
        """head_mask: bool [H] of query heads whose pre-softmax logits are zeroed (uniform attention)
        for query rows >= mask_from, as the Retrieval-Head masking check does in its eager path."""
        b, n, _ = x.shape
        s, hd = self.s, self.s.head_dim
        q = self.q_proj(x).view(b, n, s.num_attention_heads, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, n, s.num_key_value_heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, n, s.num_key_value_heads, hd).transpose(1, 2)
        c, si = cos[:n].to(q.dtype), sin[:n].to(q.dtype)
        q = q * c + rotate_half(q) * si
        k = k * c + rotate_half(k) * si
        rep = s.num_attention_heads // s.num_key_value_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        probs = None
        if fast and hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0; 1.13 (CPU debug) takes eager
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            logits = (q @ k.transpose(2, 3)) / math.sqrt(hd)
            if head_mask is not None:
                rows = torch.arange(n, device=x.device) >= mask_from
                sel = head_mask.view(1, -1, 1, 1) & rows.view(1, 1, -1, 1)
                logits = logits.masked_fill(sel, 0.0)
            causal = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)
            logits = logits.masked_fill(causal, torch.finfo(logits.dtype).min)
            probs = torch.softmax(logits.float(), dim=-1).to(q.dtype)
            o = probs @ v
        if self.training and self.drop_head > 0:
            # Whole heads dropped per sequence, the rest rescaled, so no head is indispensable.
            keep = (torch.rand(b, s.num_attention_heads, 1, 1, device=x.device) >= self.drop_head).to(o.dtype)
            o = o * keep / (1.0 - self.drop_head)
        o = o.transpose(1, 2).reshape(b, n, -1)
        return self.o_proj(o), probs


class Block(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.self_attn = Attention(s)
        self.input_layernorm = RMSNorm(s.hidden_size, s.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(s.hidden_size, s.rms_norm_eps)
        self.gate_proj = nn.Linear(s.hidden_size, s.intermediate_size, bias=False)
        self.up_proj = nn.Linear(s.hidden_size, s.intermediate_size, bias=False)
        self.down_proj = nn.Linear(s.intermediate_size, s.hidden_size, bias=False)

    def forward(self, x, cos, sin, fast, head_mask=None, mask_from=0):
        a, probs = self.self_attn(self.input_layernorm(x), cos, sin, fast, head_mask, mask_from)
        x = x + a
        h = self.post_attention_layernorm(x)
        x = x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))
        return x, probs


class TinyLlama(nn.Module):
    def __init__(self, s: LlamaShape):
        super().__init__()
        self.s = s
        self.embed_tokens = nn.Embedding(s.vocab_size, s.hidden_size)
        self.layers = nn.ModuleList(Block(s) for _ in range(s.num_hidden_layers))
        self.norm = RMSNorm(s.hidden_size, s.rms_norm_eps)
        self.apply(self._init)
        for blk in self.layers:  # GPT-2 style scaled init of the residual writers
            for w in (blk.self_attn.o_proj.weight, blk.down_proj.weight):
                nn.init.normal_(w, std=0.02 / math.sqrt(2 * s.num_hidden_layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids, fast=True, want_attn=False, want_hidden=False, head_mask=None, mask_from=0):
        """Returns (logits [B,N,V] tied to the embedding, attn list or None, hidden list or None).
        head_mask: bool [layers, heads] (eager path only)."""
        n = ids.shape[1]
        cos, sin = rope_tables(self.s, n, ids.device)
        x = self.embed_tokens(ids)
        attns, hidden = [], []
        for i, blk in enumerate(self.layers):
            hm = head_mask[i] if head_mask is not None and bool(head_mask[i].any()) else None
            x, p = blk(x, cos, sin, fast and hm is None and not want_attn, hm, mask_from)
            if want_attn:
                attns.append(p)
            if want_hidden:
                hidden.append(x)
        x = self.norm(x)
        return x @ self.embed_tokens.weight.t(), (attns if want_attn else None), (hidden if want_hidden else None)


class KVCache:
    """Keys (after RoPE) and values of every layer for incremental decoding with the eager path."""

    def __init__(self, model):
        self.model, self.k, self.v, self.n = model, [None] * model.s.num_hidden_layers, [None] * model.s.num_hidden_layers, 0

    @torch.no_grad()
    def extend(self, ids, head_mask=None, mask_from=0):
        """Runs the new tokens `ids` [1, m] (positions n..n+m-1) against the cache; returns logits [1, m, V].
        The same operations as Attention.forward's eager path, including the head mask on rows >= mask_from,
        so greedy decoding gives the tokens of full recomputation at a fraction of the cost."""
        m, s = ids.shape[1], self.model.s
        hd, n0 = s.head_dim, self.n
        cos, sin = rope_tables(s, n0 + m, ids.device)
        x = self.model.embed_tokens(ids)
        rep = s.num_attention_heads // s.num_key_value_heads
        rows = torch.arange(n0, n0 + m, device=ids.device)
        causal = rows.view(-1, 1) < torch.arange(n0 + m, device=ids.device).view(1, -1)
        for i, blk in enumerate(self.model.layers):
            at = blk.self_attn
            h = blk.input_layernorm(x)
            q = at.q_proj(h).view(1, m, s.num_attention_heads, hd).transpose(1, 2)
            k = at.k_proj(h).view(1, m, s.num_key_value_heads, hd).transpose(1, 2)
            v = at.v_proj(h).view(1, m, s.num_key_value_heads, hd).transpose(1, 2)
            c, si = cos[n0:n0 + m].to(q.dtype), sin[n0:n0 + m].to(q.dtype)
            q = q * c + rotate_half(q) * si
            k = k * c + rotate_half(k) * si
            self.k[i] = k if self.k[i] is None else torch.cat([self.k[i], k], dim=2)
            self.v[i] = v if self.v[i] is None else torch.cat([self.v[i], v], dim=2)
            kk = self.k[i].repeat_interleave(rep, dim=1)
            vv = self.v[i].repeat_interleave(rep, dim=1)
            logits = (q @ kk.transpose(2, 3)) / math.sqrt(hd)
            hm = head_mask[i] if head_mask is not None and bool(head_mask[i].any()) else None
            if hm is not None:
                sel = hm.view(1, -1, 1, 1) & (rows >= mask_from).view(1, 1, -1, 1)
                logits = logits.masked_fill(sel, 0.0)
            logits = logits.masked_fill(causal, torch.finfo(logits.dtype).min)
            probs = torch.softmax(logits.float(), dim=-1).to(q.dtype)
            o = (probs @ vv).transpose(1, 2).reshape(1, m, -1)
            x = x + at.o_proj(o)
            h = blk.post_attention_layernorm(x)
            x = x + blk.down_proj(F.silu(blk.gate_proj(h)) * blk.up_proj(h))
        self.n += m
        x = self.model.norm(x)
        return x @ self.model.embed_tokens.weight.t()


def save_file(tensors, path):
    """safetensors writer; the few lines below stand in only where the package is missing (CPU debug)."""
    try:
        from safetensors.torch import save_file as st_save
        return st_save(tensors, path, metadata={"format": "pt"})
    except ImportError:
        pass
    header, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for k in sorted(tensors):
        b = tensors[k].view(torch.int16).numpy().tobytes()
        header[k] = {"dtype": "BF16", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def load_file(path):
    try:
        from safetensors.torch import load_file as st_load
        return st_load(path)
    except ImportError:
        pass
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        t = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.int16).view(torch.bfloat16)
        out[k] = t.reshape(v["shape"])
    return out


def hf_state_dict(model):
    """Tensor names of transformers' LlamaForCausalLM (tied: no lm_head.weight)."""
    out = {"model.embed_tokens.weight": model.embed_tokens.weight, "model.norm.weight": model.norm.weight}
    for i, b in enumerate(model.layers):
        p = f"model.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[p + f"self_attn.{n}.weight"] = getattr(b.self_attn, n).weight
        for n in ("gate_proj", "up_proj", "down_proj"):
            out[p + f"mlp.{n}.weight"] = getattr(b, n).weight
        out[p + "input_layernorm.weight"] = b.input_layernorm.weight
        out[p + "post_attention_layernorm.weight"] = b.post_attention_layernorm.weight
    return out


def hf_config(s: LlamaShape):
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": s.vocab_size,
        "hidden_size": s.hidden_size,
        "intermediate_size": s.intermediate_size,
        "num_hidden_layers": s.num_hidden_layers,
        "num_attention_heads": s.num_attention_heads,
        "num_key_value_heads": s.num_key_value_heads,
        "head_dim": s.head_dim,
        "max_position_embeddings": s.max_position_embeddings,
        "rope_theta": s.rope_theta,
        "rope_scaling": None,
        "rms_norm_eps": s.rms_norm_eps,
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": s.bos_token_id,
        "eos_token_id": s.eos_token_id,
        "pad_token_id": None,
        "torch_dtype": "bfloat16",
    }


def save_hf(model, out_dir):
    """config.json, generation_config.json and bf16 model.safetensors in Hugging Face Llama layout."""
    os.makedirs(out_dir, exist_ok=True)
    tensors = {k: v.detach().to(torch.bfloat16).contiguous().cpu() for k, v in hf_state_dict(model).items()}
    save_file(tensors, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_config(model.s), f, indent=2)
    gen = {"bos_token_id": model.s.bos_token_id, "eos_token_id": model.s.eos_token_id, "do_sample": False,
           "max_new_tokens": 32}
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)


def load_hf(out_dir, device="cpu", dtype=torch.float32):
    """Loads a folder written by save_hf back into TinyLlama (used by the evaluation)."""
    with open(os.path.join(out_dir, "config.json")) as f:
        cfg = json.load(f)
    s = LlamaShape(**{k: cfg[k] for k in asdict(LlamaShape()).keys()})
    model = TinyLlama(s)
    sd = load_file(os.path.join(out_dir, "model.safetensors"))
    own = hf_state_dict(model)
    with torch.no_grad():
        for k, p in own.items():
            p.copy_(sd[k].to(torch.float32))
    return model.to(device=device, dtype=dtype).eval()
