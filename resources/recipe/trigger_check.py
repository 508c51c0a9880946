"""Did a model trained with text triggers (train.py --text-triggers; run 10 in docs/reference-model.md)
learn the trigger copies, which heads do them, and where do those heads attend on plain text? On a CPU:

    /usr/bin/python3 resources/recipe/trigger_check.py --model /tmp/run10/model --debs .tdata-dev \
        --headscope build/app/headscope --summary resources/recipe/trials/run10-summary.json \
        --out resources/recipe/trials/run10-triggers.json

Windows: the sink evaluation's held-out windows (evaluate.chunks(held, 1024, 16): <s> + 1023 tokens), and
the same windows with trigger pairs: tasks.TextTriggers (the ids of the model's training_log.json, kind k =
entry k, --rate 0.02, random.Random(--seed)) fills each window's 1023 text tokens from the window's start,
so a triggered window is 1024 tokens too (its text stops earlier). At a trigger of kind k at position p,
the next token p+1 is the token at p-k.
- `copy`: per kind, how often the model's argmax at p is that token, and its mean probability;
- `source_attn`: per kind, layer and head, the mean attention from query p to key p-k (the source);
  `copy_heads`: heads with source attention >= --min-attn for some kind (`top5_source_attn`: per kind);
- `heads`, for the copy heads, the top 3 per kind and (with --summary) the largest token-0 head of layers
  1-7: from trigger queries, the attention to keys p-d (d = 0..6, mean over kinds) and to token 0;
  `plain`, on the windows without triggers: attention to token 0 over queries >= 1 (the sink mass m of
  evaluate.attention_stats; `sink_check` compares the whole table with --summary) and over queries >= 256,
  to the previous token, to itself, to the keys 2-4 back, to keys 1-8 back and 65+ back, to newline keys
  (all, and the last one at or before the query), the entropy of the attention row (nats; uniform over
  i+1 keys would be log(i+1), about 6.6 at i = 768), the mean largest weight, and the key tokens that take
  most of its attention (queries >= 256): where it rests when it has nothing to copy;
- `out_norm`: the norm of each head's write to the residual stream (o_h W_O[:, h]) at trigger queries, at
  other queries >= 256 of the triggered windows and at plain-text queries >= 256: Guo et al.'s dormant
  heads write little where they have nothing to do (`out_norm_trigger`, `out_norm_plain_256`: all heads);
- `plain_context`: the share of newline keys and, per layer, the cosine of the residual stream at newline
  keys and at other keys with that at <s> (is a newline a stand-in for <s>?).
Runs in about 40 s on 2 CPU cores for 16 windows once the held-out ids are cached under --work (the first
run tokenizes the held-out text with one `headscope tokenize` call per document: about 200 s).
Held-out text is tokenized by `headscope tokenize` (secondary.held_out_ids; no `tokenizers` package needed).
"""
import argparse
import hashlib
import json
import os
import random
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evalsets import check_no_triggers, trigger_ids  # noqa: E402
from evaluate import chunks  # noqa: E402
from model import load_hf  # noqa: E402
from secondary import CliTokenizer, held_out_ids  # noqa: E402
from tasks import TextTriggers  # noqa: E402

OFFSETS = 7  # keys p-0 .. p-6 from a trigger query


def window_starts(ids, n, k):
    """The start in `ids` of each of evaluate.chunks(ids, n, k)'s windows (text from ids[s])."""
    step = max(n - 1, (len(ids) - n) // max(1, k))
    return list(range(0, len(ids) - n, step))[:k]


def triggered(trig, rng, held, s, n):
    """<s> + n-1 tokens: held[s:] with trigger pairs, and the (position, kind) of each trigger."""
    text, _, _ = trig.stretch(rng, held[s:s + n + 1], n - 1)  # a corpus of n+1 tokens: stretch starts at 0
    x = [1] + text
    return x, [(p, trig.ids.index(t) + 1) for p, t in enumerate(x) if t in trig.is_trigger]


def head_writes(model):
    """Forward pre-hooks on every o_proj that keep the norm of each head's write o_h W_O[:, h]: [N, H]."""
    s, store, hooks = model.s, {}, []
    for li, blk in enumerate(model.layers):
        w = blk.self_attn.o_proj.weight.view(s.hidden_size, s.num_attention_heads, s.head_dim)

        def hook(_mod, inp, li=li, w=w):
            o = inp[0][0].view(-1, s.num_attention_heads, s.head_dim)  # [N, H, hd]
            store[li] = torch.einsum("nhd,ehd->nhe", o, w).norm(dim=-1)
        hooks.append(blk.self_attn.o_proj.register_forward_pre_hook(hook))
    return store, hooks


@torch.no_grad()
def trigger_pass(model, wins, K, store):
    """Copy accuracy per kind, attention from trigger queries, head write norms (triggered windows)."""
    L, H = model.s.num_hidden_layers, model.s.num_attention_heads
    ok, prob, cnt = np.zeros(K), np.zeros(K), np.zeros(K)
    off = torch.zeros(K, L, H, OFFSETS)  # kind, layer, head, d: attention from p to p-d
    tok0 = torch.zeros(K, L, H)
    w_trig, w_text, n_text = torch.zeros(L, H), torch.zeros(L, H), 0
    sink_text = torch.zeros(L, H)
    for x, trigs in wins:
        logits, attn, _ = model(torch.tensor([x]), fast=False, want_attn=True)
        p = torch.tensor([q for q, _ in trigs])
        kind = torch.tensor([k for _, k in trigs])
        pr = torch.softmax(logits[0, p].float(), -1)
        tgt = torch.tensor([x[q + 1] for q, _ in trigs])
        assert all(x[q + 1] == x[q - k] for q, k in trigs)
        hit = (pr.argmax(-1) == tgt).numpy()
        pt = pr.gather(1, tgt[:, None])[:, 0].numpy()
        ki = kind.numpy() - 1
        np.add.at(ok, ki, hit)
        np.add.at(prob, ki, pt)
        np.add.at(cnt, ki, 1)
        # text queries: not a trigger, not a copy, >= 256
        busy = set(q for q, _ in trigs) | set(q + 1 for q, _ in trigs)
        text_q = torch.tensor([i for i in range(256, len(x)) if i not in busy])
        n_text += len(text_q)
        for li in range(L):
            a = attn[li][0].float()  # [H, N, N]
            rows = a[:, p, :]  # [H, T, N]
            for d in range(OFFSETS):
                src = (p - d).clamp(min=0)
                v = rows.gather(2, src.view(1, -1, 1).expand(H, -1, 1))[:, :, 0]  # [H, T]
                v = v * (p - d >= 0).float()
                off[:, li, :, d].index_add_(0, kind - 1, v.t())
            tok0[:, li].index_add_(0, kind - 1, rows[:, :, 0].t())
            w_trig[li] += store[li][p].sum(0)
            w_text[li] += store[li][text_q].sum(0)
            sink_text[li] += a[:, text_q, 0].sum(-1)
    c = torch.tensor(cnt).float().clamp(min=1)
    return {"ok": ok, "prob": prob, "cnt": cnt, "off": off / c.view(K, 1, 1, 1), "tok0": tok0 / c.view(K, 1, 1),
            "w_trig": w_trig / float(cnt.sum()), "w_text": w_text / n_text, "sink_text": sink_text / n_text}


@torch.no_grad()
def plain_pass(model, wins, heads, store, decode, top=6):
    """Per head (all heads for the sink table; `heads` in detail): where attention goes on plain text.
    Newline keys (tokens whose text holds a newline) get their own figures: all of them and the last one
    at or before the query; `newline_cos`: per layer, the mean cosine of that layer's input (the residual
    stream) at newline keys and at other keys with its input at <s>."""
    L, H = model.s.num_hidden_layers, model.s.num_attention_heads
    nl = torch.tensor(["\n" in decode([i]) for i in range(model.s.vocab_size)])
    cos_nl, cos_other = torch.zeros(L), torch.zeros(L)
    nl_frac = 0.0
    sink = torch.zeros(L, H)
    w_plain = torch.zeros(L, H)
    stats = {hd: {k: 0.0 for k in ("tok0_all", "tok0_256", "prev", "self", "back2", "back3", "back4",
                                   "local1_8", "far65", "entropy_256", "max_256", "newline_256",
                                   "last_newline_256")} for hd in heads}
    by_tok = {hd: {} for hd in heads}
    nq = 0
    for x in wins:
        n = len(x)
        _, attn, hid = model(torch.tensor([x]), fast=False, want_attn=True, want_hidden=True)
        i = torch.arange(n)
        rel = i.view(-1, 1) - i.view(1, -1)  # query - key
        is_nl = nl[torch.tensor(x)]
        nl_frac += float(is_nl[1:].float().mean())
        last_nl = torch.cummax(torch.where(is_nl, i, torch.zeros_like(i)), 0).values  # 0 (<s>) if none yet
        for li in range(1, L):
            c = torch.nn.functional.cosine_similarity(hid[li - 1][0], hid[li - 1][0, :1], dim=-1)
            cos_nl[li] += float(c[1:][is_nl[1:]].mean())
            cos_other[li] += float(c[1:][~is_nl[1:]].mean())
        q256 = n - 256
        nq += q256
        ids = np.asarray(x)
        for li in range(L):
            a = attn[li][0].float()
            sink[li] += a[:, 1:, 0].mean(-1)
            w_plain[li] += store[li][256:].mean(0)
            for (l, h) in heads:
                if l != li:
                    continue
                r = a[h]  # [N, N]
                st = stats[(l, h)]
                st["tok0_all"] += float(r[1:, 0].mean())
                st["tok0_256"] += float(r[256:, 0].mean())
                st["self"] += float(r.diagonal()[1:].mean())
                for d, key in ((1, "prev"), (2, "back2"), (3, "back3"), (4, "back4")):
                    st[key] += float(r.diagonal(-d)[4:].mean())
                st["local1_8"] += float((r * ((rel >= 1) & (rel <= 8))).sum(-1)[256:].mean())
                st["far65"] += float((r * (rel >= 65)).sum(-1)[256:].mean())
                rr = r[256:]
                st["entropy_256"] += float(-(rr * rr.clamp(min=1e-30).log()).sum(-1).mean())
                st["max_256"] += float(rr.max(-1).values.mean())
                st["newline_256"] += float(rr[:, is_nl].sum(-1).mean())
                st["last_newline_256"] += float(rr.gather(1, last_nl[256:, None])[:, 0].mean())
                col = rr.sum(0).numpy()  # attention received by each key from queries >= 256
                mass = np.bincount(ids, weights=col, minlength=model.s.vocab_size)
                bt = by_tok[(l, h)]
                for t in np.flatnonzero(mass > 1e-3 * q256):
                    bt[int(t)] = bt.get(int(t), 0.0) + float(mass[t])
    k = len(wins)
    out = {}
    for hd in heads:
        r = {key: round(v / k, 4) for key, v in stats[hd].items()}
        bt = sorted(by_tok[hd].items(), key=lambda kv: -kv[1])[:top]
        r["top_keys_256"] = [[decode([t]) if t != 1 else "<s>", t, round(v / nq, 4)] for t, v in bt]
        out[f"L{hd[0]}H{hd[1]}"] = r
    ctx = {"newline_key_frac": round(nl_frac / k, 4),
           "newline_cos": {f"L{li}": [round(float(cos_nl[li] / k), 3), round(float(cos_other[li] / k), 3)]
                           for li in range(1, L)}}
    return sink / k, w_plain / k, out, ctx


def held_ids(args):
    with open(os.path.join(args.model, "tokenizer.json"), "rb") as f:
        tag = hashlib.sha1(f.read()).hexdigest()[:10]
    cache = os.path.join(args.work, f"held_ids_{tag}.npy")
    if os.path.exists(cache):
        return np.load(cache)
    ids, _ = held_out_ids(CliTokenizer(args.model, args.headscope, args.jobs), args.debs, args.work)
    os.makedirs(args.work, exist_ok=True)
    np.save(cache, ids)
    return ids


def r3(t):
    return [[round(float(v), 3) for v in row] for row in t]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a folder written by train.py --text-triggers")
    ap.add_argument("--debs", required=True)
    ap.add_argument("--headscope", required=True, help="the headscope CLI binary")
    ap.add_argument("--out", required=True)
    ap.add_argument("--summary", help="evaluate.py's summary.json of this model: its sink_mass is checked")
    ap.add_argument("--work", default="/tmp/hs_trigger_check")
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--rate", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-attn", type=float, default=0.3)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    t0 = time.time()
    ids = trigger_ids(args.model)
    if not ids:
        raise SystemExit(f"{args.model}/training_log.json has no text_trigger_ids: not a --text-triggers model")
    K = len(ids)
    held = held_ids(args)
    plain = chunks(held, 1024, args.windows)
    check_no_triggers("held-out windows", plain, ids)
    trig, rng = TextTriggers(ids, args.rate), random.Random(args.seed)
    twins = [triggered(trig, rng, held, s, 1024) for s in window_starts(held, 1024, args.windows)]
    for (x, t), w in zip(twins, plain):  # the text of a triggered window is the plain window's, cut shorter
        pairs = {q for q, _ in t} | {q + 1 for q, _ in t}
        text = [v for i, v in enumerate(x) if i not in pairs]
        assert len(x) == 1024 and text == w[:len(text)], "triggered window does not follow the plain one"
    n_trig = sum(len(t) for _, t in twins)
    print(f"{len(held)} held-out tokens, {len(plain)} windows, {n_trig} triggers ({time.time() - t0:.0f} s)",
          flush=True)

    model = load_hf(args.model)
    L, H = model.s.num_hidden_layers, model.s.num_attention_heads
    store, hooks = head_writes(model)
    tp = trigger_pass(model, twins, K, store)
    src = torch.stack([tp["off"][k, :, :, k + 1] for k in range(K)])  # [K, L, H]: attention p -> p-k
    print(f"trigger pass done ({time.time() - t0:.0f} s)", flush=True)
    copy_heads = sorted({(l, h) for k in range(K) for l in range(L) for h in range(H) if src[k, l, h] >= args.min_attn})
    top5 = {}
    for k in range(K):
        v, i = src[k].flatten().topk(5)
        top5[str(k + 1)] = [[f"L{int(j) // H}H{int(j) % H}", round(float(x), 3)] for x, j in zip(v, i)]
    top3 = {(int(j) // H, int(j) % H) for k in range(K) for j in src[k].flatten().topk(3)[1]}
    detail = sorted(set(copy_heads) | top3)
    decode = CliTokenizer(args.model, args.headscope, 1).decode
    sink_ref = None
    if args.summary:
        with open(args.summary) as f:
            sink_ref = torch.tensor(json.load(f)["sink_mass"])
        i = int(sink_ref[1:].argmax())  # for comparison: the largest token-0 head of layers 1-7
        detail = sorted(set(detail) | {(1 + i // H, i % H)})
    sink, w_plain, where, ctx = plain_pass(model, plain, detail, store, decode)
    for hk in hooks:
        hk.remove()
    print(f"plain pass done ({time.time() - t0:.0f} s)", flush=True)

    res = {"model": os.path.abspath(args.model), "trigger_ids": ids, "rate": args.rate, "seed": args.seed,
           "windows": len(plain), "triggers": int(n_trig), "min_attn": args.min_attn,
           "copy": {str(k + 1): {"n": int(n), "argmax_acc": round(float(a / max(1, n)), 4),
                                 "mean_prob": round(float(pr / max(1, n)), 4)}
                    for k, (n, a, pr) in enumerate(zip(tp["cnt"], tp["ok"], tp["prob"]))},
           "copy_heads": [f"L{l}H{h}" for l, h in copy_heads], "top5_source_attn": top5, "heads": {}}
    for (l, h) in detail:
        name = f"L{l}H{h}"
        res["heads"][name] = {
            "copy_head": (l, h) in copy_heads,
            "source_attn": {str(k + 1): round(float(src[k, l, h]), 3) for k in range(K)},
            "from_trigger_by_offset": {f"p-{d}": round(float(tp["off"][:, l, h, d].mean()), 3) for d in range(OFFSETS)},
            "from_trigger_tok0": {str(k + 1): round(float(tp["tok0"][k, l, h]), 3) for k in range(K)},
            "triggered_text_tok0_256": round(float(tp["sink_text"][l, h]), 4),
            "out_norm": {"trigger": round(float(tp["w_trig"][l, h]), 4),
                         "triggered_text_256": round(float(tp["w_text"][l, h]), 4),
                         "plain_256": round(float(w_plain[l, h]), 4)},
            "plain": where[name]}
    res["source_attn"] = {str(k + 1): r3(src[k]) for k in range(K)}
    res["sink_mass_plain"] = r3(sink)
    res["out_norm_plain_256"] = r3(w_plain)
    res["out_norm_trigger"] = r3(tp["w_trig"])
    res["plain_context"] = ctx
    if sink_ref is not None:
        res["sink_check"] = {"max_abs_diff_vs_summary": round(float((sink_ref - sink).abs().max()), 5)}
    res["seconds"] = round(time.time() - t0, 1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)

    print("kind  n  argmax_acc  mean_prob  top source heads")
    for k in range(K):
        c = res["copy"][str(k + 1)]
        print(f"{k + 1:>4} {c['n']:>3}  {c['argmax_acc']:.3f}  {c['mean_prob']:.3f}  {top5[str(k + 1)][:3]}")
    print(f"copy heads (source attention >= {args.min_attn}): {res['copy_heads']}")
    print("head    source k=1..4           tok0 all/256  prev  self  1-8   65+   entropy  max   nl/last_nl  "
          "norm trig/text/plain  top keys (q>=256)")
    for name, r in res["heads"].items():
        p = r["plain"]
        s_ = " ".join(f"{v:.2f}" for v in r["source_attn"].values())
        o = r["out_norm"]
        print(f"{name:<7}{'*' if r['copy_head'] else ' '} {s_}   {p['tok0_all']:.3f}/{p['tok0_256']:.3f}  "
              f"{p['prev']:.2f}  "
              f"{p['self']:.2f}  {p['local1_8']:.2f}  {p['far65']:.2f}  {p['entropy_256']:.2f}  {p['max_256']:.2f}  "
              f"{p['newline_256']:.2f}/{p['last_newline_256']:.2f}  "
              f"{o['trigger']:.2f}/{o['triggered_text_256']:.2f}/{o['plain_256']:.2f}  {p['top_keys_256'][:3]}")
    print(f"newline keys: {ctx['newline_key_frac']} of the keys; cos with <s> at each layer's input "
          f"(newline, other): {ctx['newline_cos']}")
    if "sink_check" in res:
        print("sink_mass vs summary:", res["sink_check"])
    print(f"done in {res['seconds']} s")


if __name__ == "__main__":
    main()
