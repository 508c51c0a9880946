"""The recipe's own evaluation of the reference model (PyTorch, eager attention, float32).

    python3 resources/recipe/evaluate.py --model resources/model --debs .tdata --out OUTDIR

Writes OUTDIR/summary.json (every figure of docs/reference-model.md), OUTDIR/reference/*.json[l]
(the per-head tables and eval sets for tests/fixtures/reference/) and OUTDIR/eval/*.jsonl
(classification and multiple choice for resources/eval/).
"""
import argparse
import copy
import json
import os
import random
import re
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus as C  # noqa: E402
import evalsets as E  # noqa: E402
from model import KVCache, load_hf  # noqa: E402
from train import encode_docs  # noqa: E402

MAX_NEW = 24  # every answer (<= 12 tokens + ".\n") ends well before; the reference code allows 50


@torch.no_grad()
def greedy(model, ids, dev, nl_ids, head_mask=None, want_attn=False, cached=True):
    """Greedy decoding; yields (step_token, attn list or None) until a newline. Without attention maps
    it decodes with a KV cache (KVCache: the eager path's operations, head mask included), otherwise
    by full recomputation."""
    n0 = len(ids)
    if cached and not want_attn:
        cache = KVCache(model)
        logits = cache.extend(torch.tensor([ids], device=dev), head_mask, n0 - 1)
        for _ in range(MAX_NEW):
            w = int(logits[0, -1].argmax())
            yield w, None
            if w in nl_ids:
                return
            logits = cache.extend(torch.tensor([[w]], device=dev), head_mask, n0 - 1)
        return
    x = torch.tensor([ids], device=dev)
    for _ in range(MAX_NEW):
        fast = head_mask is None and not want_attn
        logits, attn, _ = model(x, fast=fast, want_attn=want_attn, head_mask=head_mask, mask_from=n0 - 1)
        w = int(logits[0, -1].argmax())
        yield w, ([a[0, :, -1] for a in attn] if want_attn else None)
        if w in nl_ids:
            return
        x = torch.cat([x, torch.tensor([[w]], device=dev)], dim=1)


def first_number(text):
    m = re.search(r"\d+", text)
    return m.group(0) if m else ""


def rouge1_recall(pred, ref):
    p, r = re.findall(r"[a-z0-9]+", pred.lower()), re.findall(r"[a-z0-9]+", ref.lower())
    if not r:
        return 0.0
    pc = {}
    for t in p:
        pc[t] = pc.get(t, 0) + 1
    hit = 0
    for t in r:
        if pc.get(t, 0) > 0:
            pc[t] -= 1
            hit += 1
    return hit / len(r)


def passkey_accuracy(model, tok, items, dev, nl_ids, head_mask=None):
    by_len, rows = {}, []
    for it in items:
        out = [w for w, _ in greedy(model, it["ids"], dev, nl_ids, head_mask)]
        ok = first_number(tok.decode(out)) == it["answer"]
        by_len.setdefault(it["length"], []).append(ok)
        rows.append(ok)
    return {str(k): 100.0 * sum(v) / len(v) for k, v in by_len.items()}, rows


@torch.no_grad()
def masked_passkey_accuracy(model, tok, items, dev, nl_ids, masks):
    """passkey_accuracy under each of `masks` (None: no mask). The masks act only from the last prompt
    token on, so the prompt before it is run once and its KV cache shared by every mask."""
    res = [{} for _ in masks]
    for it in items:
        ids, n0 = it["ids"], len(it["ids"])
        prefix = KVCache(model)
        prefix.extend(torch.tensor([ids[:-1]], device=dev))
        for r, mk in zip(res, masks):
            cache = copy.copy(prefix)
            cache.k, cache.v = list(prefix.k), list(prefix.v)
            logits = cache.extend(torch.tensor([ids[-1:]], device=dev), mk, n0 - 1)
            out = []
            for _ in range(MAX_NEW):
                w = int(logits[0, -1].argmax())
                out.append(w)
                if w in nl_ids:
                    break
                logits = cache.extend(torch.tensor([[w]], device=dev), mk, n0 - 1)
            r.setdefault(it["length"], []).append(first_number(tok.decode(out)) == it["answer"])
    return [{str(k): 100.0 * sum(v) / len(v) for k, v in r.items()} for r in res]


def masking_check(model, tok, pk, heads, per_cell, dev, nl_ids, seeds=5):
    """Retrieval-Head masking check: the detected heads vs `seeds` draws of as many other heads."""
    L, H = model.s.num_hidden_layers, model.s.num_attention_heads
    sub = [it for i, it in enumerate(pk) if i % per_cell < max(1, per_cell // 2)]

    def mask_of(hs):
        m = torch.zeros(L, H, dtype=torch.bool, device=dev)
        for l, h in hs:
            m[l, h] = True
        return m
    chosen = {(l, h) for l, h in heads}
    others = [(l, h) for l in range(L) for h in range(H) if (l, h) not in chosen]
    picks = [random.Random(seed).sample(others, len(heads)) for seed in range(seeds)]
    accs = masked_passkey_accuracy(model, tok, sub, dev, nl_ids,
                                   [None, mask_of(heads)] + [mask_of(p) for p in picks])
    rand = [{"heads": p, "accuracy": a} for p, a in zip(picks, accs[2:])]
    mean_rand = {k: sum(r["accuracy"][k] for r in rand) / len(rand) for k in accs[0]}
    return {"n_prompts": len(sub), "k": len(heads), "heads": heads, "baseline": accs[0],
            "retrieval_masked": accs[1], "random_masked_mean": mean_rand, "random_runs": rand}


def retrieval_scores(model, tok, items, dev, nl_ids, L, H):
    """Wu et al.'s copy-paste rule per query head (see shared/spec/methods-heads-and-formats.md 1)."""
    counter = {f"{l}-{h}": [] for l in range(L) for h in range(H)}
    n_ok = 0
    for it in items:
        if it["answer_span"] is None:
            continue
        s, e = it["answer_span"]
        ids = it["ids"]
        score = torch.zeros(L, H)
        out = []
        for w, attn in greedy(model, ids, dev, nl_ids, want_attn=True):
            out.append(w)
            for l in range(L):
                j = attn[l].argmax(-1).cpu()  # [H]: top-1 key of this step's query row
                for h in range(H):
                    jj = int(j[h])
                    if s <= jj < e and ids[jj] == w:
                        score[l, h] += 1.0 / (e - s)
        if rouge1_recall(tok.decode(out), it["answer"]) > 0.5:
            n_ok += 1
            for l in range(L):
                for h in range(H):
                    counter[f"{l}-{h}"].append(round(float(score[l, h]), 6))
    return counter, n_ok


@torch.no_grad()
def attention_stats(model, batches, dev, L, H):
    """Sink mass on token 0 (all queries i>=1 and the last quarter) and ACT's column means c[j]."""
    sink = torch.zeros(L, H)
    sink_q = torch.zeros(L, H)
    top0 = torch.zeros(L, H)
    act = []  # (layer, head, position, token id, c[j]) for j > 0 with c[j] > 0.1
    for ids in batches:
        x = torch.tensor([ids], device=dev)
        n = len(ids)
        _, attn, _ = model(x, fast=False, want_attn=True)
        for l in range(L):
            a = attn[l][0].float()  # [H, N, N]
            sink[l] += a[:, 1:, 0].mean(-1).cpu()
            sink_q[l] += a[:, 3 * n // 4:, 0].mean(-1).cpu()
            c = a.sum(1) / torch.arange(n, 0, -1, device=dev).float()  # [H, N]
            top0[l] += (c.argmax(-1) == 0).float().cpu()
            hit = (c[:, 1:] > 0.1).nonzero().tolist()
            act += [(l, h, j + 1, ids[j + 1], round(float(c[h, j + 1]), 4)) for h, j in hit]
    k = len(batches)
    return sink / k, sink_q / k, top0 / k, act


def random_ids(g, vocab, n, exclude=()):
    """n random ids in 3..vocab-1 drawn with generator g, none in `exclude` (the model's text triggers,
    which are to stay out of the evaluation); without exclude, the draw of the shipped figures."""
    r = torch.randint(3, vocab, (n,), generator=g)
    bad = torch.isin(r, torch.tensor(list(exclude), dtype=r.dtype)) if exclude else None
    while bad is not None and bad.any():
        r[bad] = torch.randint(3, vocab, (int(bad.sum()),), generator=g)
        bad = torch.isin(r, torch.tensor(list(exclude), dtype=r.dtype))
    return r


@torch.no_grad()
def repeat_scores(model, dev, L, H, vocab, T=200, B=16, seed=31, exclude=()):
    """Previous-token, duplicate-token and induction scores on <s> + R + R (R: T random tokens, none in
    exclude)."""
    g = torch.Generator().manual_seed(seed)
    prev, dup, ind = torch.zeros(L, H), torch.zeros(L, H), torch.zeros(L, H)
    seqs = []
    for _ in range(B):
        r = random_ids(g, vocab, T, exclude)
        ids = torch.cat([torch.tensor([1]), r, r])
        seqs.append(ids.tolist())
        _, attn, _ = model(ids[None].to(dev), fast=False, want_attn=True)
        i2 = torch.arange(T + 1, 2 * T + 1, device=dev)  # second copy
        i_all = torch.arange(1, 2 * T + 1, device=dev)
        for l in range(L):
            a = attn[l][0].float()
            prev[l] += a[:, i_all, i_all - 1].mean(-1).cpu()
            dup[l] += a[:, i2, i2 - T].mean(-1).cpu()
            ind[l] += a[:, i2, i2 - T + 1].mean(-1).cpu()
    return prev / B, dup / B, ind / B, seqs


@torch.no_grad()
def secondary_sinks(model, batches, dev, L, tok):
    """Wong et al.'s hidden-state rule: |cos(h_l[j], h_l[b])| > 0.9, lifetime = number of layers."""
    found = []
    clip = []
    for ids in batches:
        _, _, hid = model(torch.tensor([ids], device=dev), fast=True, want_hidden=True)
        h = torch.stack([x[0].float() for x in hid])  # [L, N, D]
        norms = h.norm(dim=-1)  # [L, N]
        b = int(norms[:, :2].mean(0).argmax())
        nb = norms[:, b]
        d = nb[1:] - nb[:-1]
        start = int(d.argmax()) + 1
        end = int(d[start:].argmin()) + start + 1 if start < L - 1 else L
        clip.append((start, end))
        cos = torch.nn.functional.cosine_similarity(h, h[:, b:b + 1], dim=-1).abs()  # [L, N]
        for j in range(b + 1, len(ids)):
            layers_all = (cos[:, j] > 0.9).nonzero().flatten().tolist()
            layers = [x for x in layers_all if start <= x < end]
            if layers_all:
                found.append({"pos": j, "token": tok.decode([ids[j]]), "layers_in_window": layers,
                              "layers_all": layers_all})
    return found, clip


def label_sink(lifetime, L):
    if lifetime >= L - 15:
        return "primary"
    if 4 < lifetime < L - 15:
        return "secondary"
    return "noise"


def chunks(ids, n, k, bos=1):
    """Up to k windows of n tokens (<s> + n-1 text tokens), evenly spaced and never overlapping."""
    step = max(n - 1, (len(ids) - n) // max(1, k))
    return [[bos] + ids[s:s + n - 1].tolist() for s in range(0, len(ids) - n, step)][:k]


@torch.no_grad()
def perplexity(model, batches, dev):
    tot, cnt = 0.0, 0
    for ids in batches:
        x = torch.tensor([ids], device=dev)
        logits, _, _ = model(x, fast=True)
        ce = torch.nn.functional.cross_entropy(logits[0, :-1].float(), x[0, 1:], reduction="sum")
        tot, cnt = tot + float(ce), cnt + len(ids) - 1
    return float(torch.tensor(tot / cnt).exp()), cnt


@torch.no_grad()
def choice_accuracy(model, tok, items, dev):
    """ACT's protocol: one prefill, argmax over the first token of each choice at the last position."""
    ok = 0
    for it in items:
        x = torch.tensor([tok.encode(it["prompt"], add_special_tokens=True).ids], device=dev)
        logits, _, _ = model(x, fast=True)
        firsts = [tok.encode(c, add_special_tokens=False).ids[0] for c in it["choices"]]
        ok += int(int(logits[0, -1, firsts].argmax()) == it["answer"])
    return 100.0 * ok / len(items)


def table(t):
    return [[round(float(v), 4) for v in row] for row in t]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--debs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/hs_refmodel")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--sections", default="", help="comma-separated subset to run (default: all)")
    ap.add_argument("--gcide-chars", type=int, default=40_000_000, help="as given to train.py (word list)")
    args = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = load_hf(args.model, dev)
    L, H = model.s.num_hidden_layers, model.s.num_attention_heads
    if args.debug:
        tok = C.ByteTokenizer()
    else:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    vocab = tok.get_vocab_size()
    root = os.path.join(args.work, "debroot")
    C.unpack_debs(args.debs, root)
    train_docs, held_docs = C.load_texts(root, gcide_chars=args.gcide_chars)
    random.Random(0).shuffle(train_docs)
    words = C.word_list(train_docs)
    held_ids = encode_docs(tok, held_docs)
    triggers = E.trigger_ids(args.model)
    E.check_no_triggers("held-out text", [held_ids], triggers)
    train_ids = encode_docs(tok, train_docs[:20000])
    nl_ids = {i for i in range(vocab) if "\n" in tok.decode([i])}
    ref_dir, eval_dir = os.path.join(args.out, "reference"), os.path.join(args.out, "eval")
    os.makedirs(ref_dir, exist_ok=True)
    os.makedirs(eval_dir, exist_ok=True)
    S = {"layers": L, "heads": H, "kv_heads": model.s.num_key_value_heads, "timings_s": {},
         **({"text_trigger_ids": triggers} if triggers else {})}
    per_cell = 2 if args.debug else 10

    def save():
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump(S, f, indent=1)

    def dump_jsonl(path, rows):
        with open(path, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")

    def section(name, fn):
        t = time.time()
        try:
            fn()
        except Exception as e:  # keep the other sections' figures; the error is reported in the summary
            import traceback
            traceback.print_exc()
            S.setdefault("errors", {})[name] = repr(e)
        S["timings_s"][name] = round(time.time() - t, 1)
        print(f"[{name}] {S['timings_s'][name]}s", flush=True)
        save()

    pk = E.passkey_set(tok, held_ids, words, vocab, per_cell=per_cell)
    if args.debug:
        pk = [p for i, p in enumerate(pk) if i % 8 < 2]  # 16 prompts on the CPU
    E.check_no_triggers("passkey", [it["ids"] for it in pk], triggers)
    dump_jsonl(os.path.join(ref_dir, "passkey.jsonl"), pk)
    held_batches = chunks(held_ids, 256 if args.debug else 1024, 4 if args.debug else 16)

    def s_passkey():
        acc, rows = passkey_accuracy(model, tok, pk, dev, nl_ids)
        S["passkey_accuracy"] = acc
        cells = {}
        for it, ok in zip(pk, rows):
            cells.setdefault(f"{it['length']}@{it['depth']}", []).append(ok)
        S["passkey_by_depth"] = {k: 100.0 * sum(v) / len(v) for k, v in cells.items()}
        S["passkey_n"] = len(pk)

    def s_sinks():
        m, mq, top0, act = attention_stats(model, held_batches, dev, L, H)
        S["sink_mass"], S["sink_mass_last_quarter"], S["sink_top_received"] = table(m), table(mq), table(top0)
        later = m[1:]
        S["sink_heads_after_layer0"] = {f"m>={t}": int((later >= t).sum()) for t in (0.2, 0.3, 0.5, 0.8)}
        S["sink_heads_after_layer0"]["total"] = int(later.numel())
        S["sink_heads_after_layer0"]["token0_top_received"] = int((top0[1:] > 0.5).sum())
        S["act_nonfirst_sinks"] = {"count": len(act), "examples": act[:40]}

    def s_repeat():
        prev, dup, ind, _ = repeat_scores(model, dev, L, H, vocab, exclude=triggers)
        S["previous_token"], S["duplicate_token"], S["induction"] = table(prev), table(dup), table(ind)

    def s_ppl():
        ppl, n = perplexity(model, chunks(held_ids, 1024, 256) if not args.debug else held_batches, dev)
        tr, nt = perplexity(model, chunks(train_ids, 1024, 64 if not args.debug else 4), dev)
        S["heldout_ppl"], S["heldout_tokens"], S["train_sample_ppl"], S["train_sample_tokens"] = ppl, n, tr, nt

    det = E.detection_set(tok, held_ids, words, vocab)
    if args.debug:
        det = det[::40]
    E.check_no_triggers("retrieval detection", [it["ids"] for it in det], triggers)
    dump_jsonl(os.path.join(ref_dir, "retrieval_detection.jsonl"), det)

    def s_retrieval():
        counter, n_ok = retrieval_scores(model, tok, det, dev, nl_ids, L, H)
        with open(os.path.join(ref_dir, "retrieval_head_score.json"), "w") as f:
            f.write(json.dumps(counter) + "\n")
        mean = torch.zeros(L, H)
        for k, v in counter.items():
            l, h = map(int, k.split("-"))
            mean[l, h] = sum(v) / len(v) if v else 0.0
        S["retrieval_score"], S["retrieval_samples_ok"], S["retrieval_samples"] = table(mean), n_ok, len(det)
        S["retrieval_heads_ge_0.5"] = [[l, h] for l in range(L) for h in range(H) if mean[l, h] >= 0.5]
        S["retrieval_heads_gt_0.1"] = [[l, h] for l in range(L) for h in range(H) if mean[l, h] > 0.1]

    def s_masking():
        heads = S.get("retrieval_heads_gt_0.1") or ([[1, 0], [1, 1]] if args.debug else [])
        S["masking"] = masking_check(model, tok, pk, heads, per_cell, dev, nl_ids)

    def s_secondary():
        found, clip = secondary_sinks(model, held_batches[:8], dev, L, tok)
        life = [len(f["layers_in_window"]) for f in found]
        S["secondary_sinks"] = {
            "layer_windows": clip, "candidates": len(found),
            "labels": {lab: sum(1 for x in life if x > 0 and label_sink(x, L) == lab)
                       for lab in ("primary", "secondary", "noise")},
            "lifetime_hist_all_layers": {str(k): sum(1 for f in found if len(f["layers_all"]) == k)
                                         for k in range(1, L + 1)},
            "examples": sorted(found, key=lambda f: -len(f["layers_all"]))[:30]}

    def s_choices():
        cls, mc = E.choice_sets(tok, held_ids, words, vocab)
        E.check_no_triggers("choices", [tok.encode(it["prompt"]).ids for it in cls + mc], triggers)
        dump_jsonl(os.path.join(eval_dir, "classification.jsonl"), cls)
        dump_jsonl(os.path.join(eval_dir, "multiple_choice.jsonl"), mc)
        S["classification_accuracy"] = choice_accuracy(model, tok, cls, dev)
        S["multiple_choice_accuracy"] = choice_accuracy(model, tok, mc, dev)

    for name, fn in (("passkey", s_passkey), ("sinks", s_sinks), ("repeat", s_repeat), ("perplexity", s_ppl),
                     ("choices", s_choices), ("retrieval", s_retrieval), ("masking", s_masking),
                     ("secondary", s_secondary)):
        if not args.sections or name in args.sections.split(","):
            section(name, fn)


if __name__ == "__main__":
    main()
