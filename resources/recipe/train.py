"""Trains the reference model: BPE tokenizer, then the small Llama, saved in Hugging Face format.

    python3 resources/recipe/train.py --debs .tdata --out OUTDIR        (CUDA host, ~7 minutes)
    python3 resources/recipe/train.py --debs .tdata --out /tmp/m --debug (CPU smoke test)

The run stops at --steps or at --time-budget seconds, whichever comes first; the learning-rate
schedule follows the larger of the two progress fractions so that either way it ends annealed.

Longer runs go in segments, one per device command (10 minutes each):
    train.py ... --out A --time-budget 540 --total-seconds 900            (segment 1, schedule of 900 s)
    train.py ... --out B --resume A --time-budget 360 --total-seconds 900 (segment 2 continues it)
A segment resumes from the previous one's bf16 weights and training_log.json (step, seconds done):
fp32 master weights and Adam moments are not kept (they would not fit through the device's file
limits), so each resumed segment re-warms the learning rate over --rewarmup steps while Adam's
moments refill (beta2 0.95: about 20 steps of memory).
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus as C  # noqa: E402
from model import LlamaShape, TinyLlama, load_hf, save_hf  # noqa: E402
from tasks import BigramBackcopy, TaskMaker, TextTriggers, rarest_ids  # noqa: E402


def encode_docs(tok, docs):
    sep = tok.encode_batch(["\n\n"], add_special_tokens=False)[0].ids
    out = []
    for e in tok.encode_batch(docs, add_special_tokens=False):
        out += e.ids + sep
    return np.array(out, dtype=np.int32)


def prepare(args):
    """Unpacks the .debs, trains (or loads) the tokenizer; returns (tok, train_ids, held_ids, words, n_more):
    n_more is how many of the train tokens come from --more-text's documents."""
    if args.resume and not args.debug:
        import shutil
        os.makedirs(args.out, exist_ok=True)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy2(os.path.join(args.resume, name), os.path.join(args.out, name))
    root = os.path.join(args.work, "debroot")
    C.unpack_debs(args.debs, root)
    train_docs, held_docs = C.load_texts(root, gcide_chars=args.gcide_chars)
    random.Random(0).shuffle(train_docs)
    words = C.word_list(train_docs)  # keys and needle words: those of evaluate.py, with or without --more-text
    more_docs = []
    if args.more_text:
        more_docs, stats = C.more_texts(root, held_docs)
        print(f"more text: {len(more_docs)} documents, {sum(map(len, more_docs))} characters; "
              f"{json.dumps(stats)}", flush=True)
        train_docs = train_docs + more_docs
        random.Random(1).shuffle(train_docs)
    if args.debug:
        tok = C.ByteTokenizer()
    else:
        tok_path = os.path.join(args.out, "tokenizer.json")
        if os.path.exists(tok_path):
            from tokenizers import Tokenizer
            tok = Tokenizer.from_file(tok_path)
        else:
            tok = C.train_tokenizer(train_docs, args.vocab)
            os.makedirs(args.out, exist_ok=True)
            C.save_tokenizer(tok, args.out, max_len=args.max_pos)
    n_more = len(encode_docs(tok, more_docs)) if more_docs else 0
    return tok, encode_docs(tok, train_docs), encode_docs(tok, held_docs), words, n_more


class Batches(torch.utils.data.IterableDataset):
    """Endless training batches; each DataLoader worker has its own fixed seed."""

    def __init__(self, tok, ids, words, seed, batch, seq, vocab, packed, short_frac=0.0, short_lens=(),
                 backcopy_frac=0.0, triggers=None):
        self.a = (tok, ids, words, seed, batch, seq, vocab, packed, short_frac, tuple(short_lens), backcopy_frac,
                  triggers)

    def __iter__(self):
        tok, ids, words, seed, batch, seq, vocab, packed, short_frac, short_lens, backcopy_frac, triggers = self.a
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        maker = TaskMaker(tok, ids, words, seed * 1000 + wid, vocab, packed, triggers)
        while True:
            if short_frac > 0 and maker.rng.random() < short_frac:
                # The same number of tokens as a long batch, as seq / n separate windows <s> + n text tokens.
                n = maker.rng.choice(short_lens)
                xs, ws = zip(*(maker.short_text(n + 1, 1) for _ in range(batch * seq // n)))
            elif backcopy_frac > 0:
                xs, ws = zip(*(maker.backcopy(seq + 1, 1) if maker.rng.random() < backcopy_frac
                               else maker.sequence(seq + 1, 1) for _ in range(batch)))
            else:
                xs, ws = zip(*(maker.sequence(seq + 1, 1) for _ in range(batch)))
            yield torch.tensor(xs, dtype=torch.long), torch.tensor(ws, dtype=torch.float32)


def choose_text_triggers(args, tok, train_ids, held_ids, vocab, prev):
    """The TextTriggers of --text-triggers (None at 0) and what training_log.json records of them.
    The ids are the --trigger-kinds rarest of the training text (kind k = k-th rarest); refuses ids that
    occur in the held-out text (the evaluation must never show a trigger), a mix with --backcopy-frac
    (both would take the same ids) and ids other than those of the segment resumed from."""
    if args.text_triggers <= 0:
        return None, {"text_trigger_rate": 0.0}
    if args.backcopy_frac > 0:
        raise SystemExit("--text-triggers and --backcopy-frac both use the rarest token ids as triggers: "
                         "give only one of them")
    if args.text_triggers >= 1:
        raise SystemExit(f"--text-triggers {args.text_triggers}: a probability per token, below 1")
    if not 1 <= args.trigger_kinds <= 64:
        raise SystemExit(f"--trigger-kinds {args.trigger_kinds}: expected 1 to 64")
    ids = rarest_ids(train_ids, args.trigger_kinds, vocab)
    n_train = [int((train_ids == t).sum()) for t in ids]
    n_held = [int((held_ids == t).sum()) for t in ids]
    kinds = [{"kind": k + 1, "id": t, "token": tok.decode([t]), "train_count": a, "held_count": b}
             for k, (t, a, b) in enumerate(zip(ids, n_train, n_held))]
    print(f"text triggers: rate {args.text_triggers}, {json.dumps(kinds, ensure_ascii=False)}", flush=True)
    if any(n_held):
        raise SystemExit(f"text triggers: ids {[t for t, b in zip(ids, n_held) if b]} occur in the held-out text "
                         f"({n_held} times), which the evaluation reads: use fewer --trigger-kinds")
    if any(n_train):
        print(f"text triggers: warning, ids {[t for t, a in zip(ids, n_train) if a]} also occur in the training "
              f"text ({n_train} times) with their ordinary meaning", flush=True)
    before = prev.get("text_trigger_ids")
    if before and before != ids:
        raise SystemExit(f"text triggers: ids {ids} differ from {before} of the segment resumed from")
    return TextTriggers(ids, args.text_triggers), {"text_trigger_rate": args.text_triggers, "trigger_kinds": kinds,
                                                   "text_trigger_ids": ids}


@torch.no_grad()
def sink_probe(model, held_ids, n=1024, k=4, bos=1):
    """Mean attention on token 0 per head over k held-out windows <s> + n-1 tokens (as evaluate.py's
    sink_mass, fewer windows); returns (heads after layer 0 with m >= 0.2, largest m after layer 0)."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    step = max(1, (len(held_ids) - n) // k)
    m = None
    for i in range(k):
        x = torch.tensor([[bos] + held_ids[i * step:i * step + n - 1].tolist()], device=dev)
        _, attn, _ = model(x, fast=False, want_attn=True)
        cur = torch.stack([a[0, :, 1:, 0].float().mean(-1) for a in attn])
        m = cur if m is None else m + cur
    model.train(was)
    later = (m / k)[1:]
    return int((later >= 0.2).sum()), round(float(later.max()), 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--debs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/hs_refmodel")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--time-budget", type=float, default=300.0)
    ap.add_argument("--deadline", type=float, default=360.0, help="seconds from start by which training ends")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--vocab", type=int, default=3072)
    ap.add_argument("--max-pos", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=0.3, help="weight decay; larger values favour attention sinks")
    ap.add_argument("--qk-wd", type=float, default=None,
                    help="weight decay of the query and key projections (default: --wd; 0 in runs 5a/5b)")
    ap.add_argument("--short-frac", type=float, default=0.0,
                    help="fraction of batches made of short plain-text sequences, each <s> + n tokens (run 5a)")
    ap.add_argument("--short-lens", default="32,64,128,256", help="the lengths n of those sequences (one per batch)")
    ap.add_argument("--backcopy-frac", type=float, default=0.0,
                    help="fraction of training sequences that are Bigram-Backcopy sequences "
                         "(tasks.BigramBackcopy; runs 6b/6c)")
    ap.add_argument("--text-triggers", type=float, default=0.0, metavar="RATE",
                    help="probability per token of natural training text of a trigger + copy pair inserted "
                         "after it (tasks.TextTriggers; run 10); 0 leaves the data as it was")
    ap.add_argument("--trigger-kinds", type=int, default=4, metavar="K",
                    help="kinds of text trigger: kind k copies the token k positions before it")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--gcide-chars", type=int, default=40_000_000)
    ap.add_argument("--more-text", action="store_true",
                    help="also train on the prose of the packages of fetch-debs.sh --more (corpus.more_texts); "
                         "held-out text, keys and needle words stay the same")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--packed-bos", action="store_true", help="open every short task with <s> (experiment)")
    ap.add_argument("--heads", type=int, default=8, help="query heads per layer (head_dim = 256 / heads)")
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--drop-head", type=float, default=0.0, help="DropHead probability per head and sequence")
    ap.add_argument("--total-seconds", type=float, default=0.0,
                    help="training seconds of the whole schedule over all segments (default: --time-budget)")
    ap.add_argument("--resume", default="", help="folder of the previous segment (weights + training_log.json)")
    ap.add_argument("--rewarmup", type=int, default=100, help="learning-rate warm-up steps of a resumed segment")
    ap.add_argument("--probe-every", type=int, default=1000, help="steps between sink probes (0: off)")
    args = ap.parse_args()
    if args.debug:
        args.steps, args.batch, args.seq, args.workers, args.gcide_chars = 6, 2, 256, 0, 300_000
    prev = {"steps": 0, "train_seconds": 0.0, "segments": [], "log": []}
    if args.resume:
        with open(os.path.join(args.resume, "training_log.json")) as f:
            prev = json.load(f)
        prev.setdefault("segments", [{"steps": prev["steps"], "train_seconds": prev["train_seconds"]}])
    segment = len(prev["segments"])
    short_lens = [int(n) for n in args.short_lens.split(",")]
    if args.debug:
        short_lens = [n for n in short_lens if n <= args.seq] or [args.seq // 2]
    total_s = args.total_seconds or args.time_budget
    if args.debug:
        args.steps = prev["steps"] + 6  # six steps per debug segment

    t0 = time.time()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    tok, train_ids, held_ids, words, n_more = prepare(args)
    vocab = tok.get_vocab_size()
    print(f"data: {len(train_ids)} unique train tokens ({n_more} of them from --more-text), "
          f"{len(held_ids)} held-out tokens, vocab {vocab}, "
          f"{len(words)} words, {time.time() - t0:.1f}s", flush=True)
    triggers = BigramBackcopy(train_ids).triggers if args.backcopy_frac > 0 else None
    if triggers:
        print(f"backcopy: {args.backcopy_frac} of the sequences, trigger ids {triggers} "
              f"{[tok.decode([t]) for t in triggers]}", flush=True)
    text_triggers, trigger_log = choose_text_triggers(args, tok, train_ids, held_ids, vocab, prev)

    shape = LlamaShape(vocab_size=vocab, max_position_embeddings=args.max_pos, num_attention_heads=args.heads,
                       num_key_value_heads=args.kv_heads, rope_theta=args.rope_theta)
    if args.debug:
        shape = LlamaShape(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           max_position_embeddings=args.max_pos, num_attention_heads=args.heads,
                           num_key_value_heads=args.kv_heads, rope_theta=args.rope_theta)
    model = TinyLlama(shape).to(dev)
    if args.resume:
        old = load_hf(args.resume, dev)
        if old.s != shape:
            raise SystemExit(f"--resume {args.resume}: its config.json ({old.s}) differs from this run's shape ({shape})")
        with torch.no_grad():
            for p, q in zip(model.parameters(), old.parameters()):
                p.copy_(q)
        print(f"resumed from {args.resume}: segment {segment}, step {prev['steps']}, "
              f"{prev['train_seconds']}s done of {total_s}s", flush=True)
    for blk in model.layers:
        blk.self_attn.drop_head = args.drop_head
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters", flush=True)
    qk_wd = args.wd if args.qk_wd is None else args.qk_wd
    is_qk = lambda n: n.endswith(("q_proj.weight", "k_proj.weight"))  # noqa: E731
    qk = [p for n, p in model.named_parameters() if is_qk(n)]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not is_qk(n)]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": qk, "weight_decay": qk_wd},
                             {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), **({"fused": True} if dev == "cuda" else {}))
    data = torch.utils.data.DataLoader(Batches(tok, train_ids, words, args.seed + 17 * segment, args.batch, args.seq, vocab,
                                               args.packed_bos, args.short_frac, short_lens, args.backcopy_frac,
                                               text_triggers),
                                       batch_size=None, num_workers=args.workers, pin_memory=dev == "cuda",
                                       **({"prefetch_factor": 4, "persistent_workers": True} if args.workers else {}))
    budget = min(args.time_budget, args.deadline - (time.time() - t0))
    log, step0, t_train = prev["log"], prev["steps"], time.time()
    step, done0, wait = step0, prev["train_seconds"], 0.0
    progress = max(step / args.steps, done0 / total_s)
    it = iter(data)
    while progress < 1.0 and time.time() - t_train < budget:
        tw = time.time()
        x, w = next(it)
        wait += time.time() - tw
        x, w = x.to(dev, non_blocking=True), w.to(dev, non_blocking=True)
        warm = min(1.0, (step + 1) / args.warmup) if segment == 0 else min(1.0, (step - step0 + 1) / args.rewarmup)
        lr_scale = warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = args.lr * lr_scale
        with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            logits, _, _ = model(x[:, :-1])
        ce = torch.nn.functional.cross_entropy(logits.float().reshape(-1, vocab), x[:, 1:].reshape(-1),
                                               reduction="none")
        wt = w[:, 1:].reshape(-1)
        loss = (ce * wt).sum() / wt.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed = time.time() - t_train
        progress = max(step / args.steps, (done0 + elapsed) / total_s)
        last = progress >= 1.0 or elapsed >= budget
        if step % 50 == 0 or step == step0 + 1 or last:
            plain = ce.mean().item()
            log.append({"step": step, "seconds": round(done0 + elapsed, 1), "loss": round(loss.item(), 4),
                        "lm_loss": round(plain, 4), "lr": args.lr * lr_scale})
            if args.probe_every and (step % args.probe_every == 0 or last):
                n_sink, m_max = sink_probe(model, held_ids, n=min(1024, args.seq))
                log[-1].update({"sink_heads": n_sink, "sink_max": m_max, "data_wait_s": round(wait, 1)})
            print(json.dumps(log[-1]), flush=True)
    train_s = time.time() - t_train
    save_hf(model, args.out)
    if not args.debug:
        C.save_tokenizer(tok, args.out, max_len=args.max_pos)
    segments = prev["segments"] + [{"steps": step - step0, "train_seconds": round(train_s, 1),
                                    "data_wait_seconds": round(wait, 1), "total_seconds": round(time.time() - t0, 1),
                                    "resumed_from_step": step0}]
    summary = {"steps": step, "train_seconds": round(done0 + train_s, 1), "schedule_seconds": total_s,
               "finished": progress >= 1.0, "segments": segments,
               "tokens_seen": step * args.batch * args.seq, "parameters": n_params, "batch": args.batch,
               "seq": args.seq, "lr": args.lr, "weight_decay": args.wd, "qk_weight_decay": qk_wd, "packed_bos": args.packed_bos,
               "short_frac": args.short_frac, "short_lens": short_lens if args.short_frac else None,
               "backcopy_frac": args.backcopy_frac, "backcopy_triggers": triggers, **trigger_log,
               **({"more_text": True, "train_tokens": len(train_ids), "more_text_tokens": n_more}
                  if args.more_text else {}),
               "drop_head": args.drop_head,
               "heads": args.heads, "kv_heads": args.kv_heads, "rope_theta": args.rope_theta, "rewarmup": args.rewarmup if segment else None,
               "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
               "torch": torch.__version__, "stopped_by": "steps" if step >= args.steps else "time", "log": log}
    with open(os.path.join(args.out, "training_log.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"trained {step} steps in {train_s:.0f}s", flush=True)


if __name__ == "__main__":
    main()
