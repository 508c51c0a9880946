"""Measures the token-0 attention of trial models the way docs/reference-model.md reports it, on a CPU.

    python3 resources/recipe/sink_trials.py --debs .tdata --headscope build/app/headscope \
        --out resources/recipe/trials/run6.json run4=resources/model 6a=DIR 6b=DIR 6c=DIR

For each model folder (NAME=DIR), on the 16 held-out windows of the evaluation (evaluate.chunks(held,
1024, 16): <s> + 1023 tokens of text the model never trained on):
- `plain`: the sink mass m[l][h] (evaluate.attention_stats, the figure the target is judged on), the
  heads of layers 1-7 with m >= 0.2 by band of query positions, and the perplexity of the window;
- `intro`: the same windows opened by <s> + the passkey task's intro line (46 tokens) and cut to the same
  1024 tokens, i.e. the way every training sequence of the recipe opens (Bigram-Backcopy sequences
  excepted); m and perplexity over the text queries only. It tells whether a head rests on token 0
  because of the text or because of how the window opens.
and the sink probe train.py logged during training (training_log.json). The same two openings are also
compared on two skills whose prompts the evaluation puts right after <s>: classification and multiple
choice (resources/eval/, evaluate.choice_accuracy's rule) and induction (evaluate.repeat_scores' rule,
<s> + R + R, R = 200 random ids, 16 sequences, seed 31).

Held-out text is tokenized by `headscope tokenize` as secondary.py does (no `tokenizers` package needed).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evaluate import attention_stats, chunks, random_ids  # noqa: E402
from evalsets import trigger_ids  # noqa: E402
from model import load_hf  # noqa: E402
from secondary import CliTokenizer, held_out_ids  # noqa: E402
from tasks import PASSKEY_INTRO  # noqa: E402

BANDS = [(1, 8), (8, 64), (64, 256), (256, 1024)]
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def held_ids(args):
    cache = os.path.join(args.work, "held_ids.npy")
    if os.path.exists(cache):
        return np.load(cache)
    ids, _ = held_out_ids(CliTokenizer(args.tokenizer_model, args.headscope, args.jobs), args.debs, args.work)
    os.makedirs(args.work, exist_ok=True)
    np.save(cache, ids)
    return ids


def heads_at_least(t, x=0.2):
    return int((t[1:] >= x).sum())


@torch.no_grad()
def measure(model, wins, intro):
    L, H = model.s.num_hidden_layers, model.s.num_attention_heads
    m, _, _, _ = attention_stats(model, wins, "cpu", L, H)
    out = {"sink_mass": [[round(float(v), 4) for v in row] for row in m]}
    for variant, pre in (("plain", [1]), ("intro", [1] + intro)):
        s0 = len(pre)
        sink, bands = torch.zeros(L, H), torch.zeros(L, H, len(BANDS))
        nll, cnt = 0.0, 0
        for w in wins:
            x = pre + w[1:1 + len(w) - s0]
            logits, attn, _ = model(torch.tensor([x]), fast=False, want_attn=True)
            for li, a in enumerate(attn):
                a = a[0].float()
                sink[li] += a[:, s0:, 0].mean(-1)
                bands[li] += torch.stack([a[:, lo:hi, 0].mean(-1) for lo, hi in BANDS], -1)
            lp = torch.log_softmax(logits[0, s0:-1].float(), -1)
            tgt = torch.tensor(x[s0 + 1:])
            nll += float(-lp.gather(1, tgt[:, None]).sum())
            cnt += len(tgt)
        sink /= len(wins)
        bands /= len(wins)
        later = sink[1:]
        i = int(later.argmax())
        r = {"heads_ge_0.2": heads_at_least(sink), "max": round(float(later.max()), 3),
             "argmax": f"L{i // H + 1}H{i % H}", "mean": round(float(later.mean()), 4),
             "ppl": round(float(np.exp(nll / cnt)), 1)}
        if variant == "plain":  # bands by absolute query position (the intro shifts them)
            r["bands"] = {f"{lo}-{hi - 1}": {"heads_ge_0.2": heads_at_least(bands[:, :, j]),
                                             "max": round(float(bands[1:, :, j].max()), 3)}
                          for j, (lo, hi) in enumerate(BANDS)}
            r["heads"] = [f"L{a}H{b} {float(sink[a, b]):.3f}" for a in range(1, L) for b in range(H) if sink[a, b] >= 0.2]
        out[variant] = r
    return out


@torch.no_grad()
def choice_modes(model, sets, intro):
    """Accuracy (%) with each prompt right after <s> and after <s> + intro: one prefill, argmax over the
    first token of each choice at the last position (evaluate.choice_accuracy)."""
    out = {}
    for name, rows in sets.items():
        out[name] = {}
        for variant, pre in (("plain", [1]), ("intro", [1] + intro)):
            ok = 0
            for p, firsts, answer in rows:
                logits, _, _ = model(torch.tensor([pre + p]), fast=True)
                ok += int(int(logits[0, -1, firsts].argmax()) == answer)
            out[name][variant] = round(100.0 * ok / len(rows), 1)
    return out


@torch.no_grad()
def induction_modes(model, intro, T=200, B=16, seed=31, exclude=()):
    """Mean of the 7 largest per-head induction scores (evaluate.repeat_scores) after <s> and after <s> + intro;
    exclude: the model's text triggers, kept out of R as there."""
    L, H = model.s.num_hidden_layers, model.s.num_attention_heads
    out = {}
    for variant, pre in (("plain", [1]), ("intro", [1] + intro)):
        g = torch.Generator().manual_seed(seed)
        ind = torch.zeros(L, H)
        for _ in range(B):
            r = random_ids(g, model.s.vocab_size, T, exclude)
            ids = torch.cat([torch.tensor(pre), r, r])
            _, attn, _ = model(ids[None], fast=False, want_attn=True)
            i2 = torch.arange(len(pre) + T, len(pre) + 2 * T)
            for li in range(L):
                ind[li] += attn[li][0].float()[:, i2, i2 - T + 1].mean(-1)
        out[variant] = round(float((ind / B).flatten().topk(7).values.mean()), 3)
    return out


def choice_sets(tok):
    sets = {}
    for name in ("classification", "multiple_choice"):
        with open(os.path.join(ROOT, "resources/eval", name + ".jsonl")) as f:
            items = [json.loads(line) for line in f]
        prompts = tok.encode_ids([it["prompt"] for it in items])
        choices = sorted({c for it in items for c in it["choices"]})
        first = {c: ids[0] for c, ids in zip(choices, tok.encode_ids(choices))}
        sets[name] = [(p, [first[c] for c in it["choices"]], it["answer"]) for p, it in zip(prompts, items)]
    return sets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", help="NAME=DIR")
    ap.add_argument("--debs", required=True)
    ap.add_argument("--headscope", required=True, help="the headscope CLI binary")
    ap.add_argument("--tokenizer-model", default="resources/model", help="folder whose tokenizer.json tokenizes")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/hs_sink_trials")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    t0 = time.time()
    held = held_ids(args)
    wins = chunks(held, 1024, 16)
    tok = CliTokenizer(args.tokenizer_model, args.headscope, args.jobs)
    intro = tok._encode(PASSKEY_INTRO)
    sets = choice_sets(tok)
    res = {"windows": len(wins), "intro_tokens": len(intro), "models": {}}
    for spec in args.models:
        name, path = spec.split("=", 1)
        model = load_hf(path)
        model.eval()
        r = measure(model, wins, intro)
        r["choices"] = choice_modes(model, sets, intro)
        r["induction_top7"] = induction_modes(model, intro, exclude=trigger_ids(path))
        with open(os.path.join(path, "training_log.json")) as f:
            log = json.load(f)
        r["training"] = {k: log.get(k) for k in ("steps", "train_seconds", "schedule_seconds", "tokens_seen",
                                                  "backcopy_frac", "backcopy_triggers", "qk_weight_decay", "short_frac",
                                                  "text_trigger_rate", "text_trigger_ids")}
        r["probe"] = [[e["step"], e["sink_heads"], e["sink_max"]] for e in log["log"] if "sink_heads" in e]
        res["models"][name] = r
        print(name, json.dumps({k: r[k] for k in ("plain", "intro", "choices", "induction_top7")}),
              f"{time.time() - t0:.0f}s", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
