"""Trains the reference model: BPE tokenizer, then the small Llama, saved in Hugging Face format.

    python3 resources/recipe/train.py --debs .tdata --out OUTDIR        (CUDA host, ~7 minutes)
    python3 resources/recipe/train.py --debs .tdata --out /tmp/m --debug (CPU smoke test)

The run stops at --steps or at --time-budget seconds, whichever comes first; the learning-rate
schedule follows the larger of the two progress fractions so that either way it ends annealed.
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
from model import LlamaShape, TinyLlama, save_hf  # noqa: E402
from tasks import TaskMaker  # noqa: E402


def encode_docs(tok, docs):
    sep = tok.encode_batch(["\n\n"], add_special_tokens=False)[0].ids
    out = []
    for e in tok.encode_batch(docs, add_special_tokens=False):
        out += e.ids + sep
    return np.array(out, dtype=np.int32)


def prepare(args):
    """Unpacks the .debs, trains (or loads) the tokenizer; returns (tok, train_ids, held_ids, words)."""
    root = os.path.join(args.work, "debroot")
    C.unpack_debs(args.debs, root)
    train_docs, held_docs = C.load_texts(root, gcide_chars=args.gcide_chars)
    random.Random(0).shuffle(train_docs)
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
    return tok, encode_docs(tok, train_docs), encode_docs(tok, held_docs), C.word_list(train_docs)


class Batches(torch.utils.data.IterableDataset):
    """Endless training batches; each DataLoader worker has its own fixed seed."""

    def __init__(self, tok, ids, words, seed, batch, seq, vocab, packed):
        self.a = (tok, ids, words, seed, batch, seq, vocab, packed)

    def __iter__(self):
        tok, ids, words, seed, batch, seq, vocab, packed = self.a
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        maker = TaskMaker(tok, ids, words, seed * 1000 + wid, vocab, packed)
        while True:
            xs, ws = zip(*(maker.sequence(seq + 1, 1) for _ in range(batch)))
            yield torch.tensor(xs, dtype=torch.long), torch.tensor(ws, dtype=torch.float32)


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
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--gcide-chars", type=int, default=40_000_000)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--packed-bos", action="store_true", help="open every short task with <s> (experiment)")
    args = ap.parse_args()
    if args.debug:
        args.steps, args.batch, args.seq, args.workers, args.gcide_chars = 6, 2, 256, 0, 300_000

    t0 = time.time()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    tok, train_ids, held_ids, words = prepare(args)
    vocab = tok.get_vocab_size()
    print(f"data: {len(train_ids)} train tokens, {len(held_ids)} held-out tokens, vocab {vocab}, "
          f"{len(words)} words, {time.time() - t0:.1f}s", flush=True)

    shape = LlamaShape(vocab_size=vocab, max_position_embeddings=args.max_pos)
    if args.debug:
        shape = LlamaShape(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           max_position_embeddings=args.max_pos)
    model = TinyLlama(shape).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), **({"fused": True} if dev == "cuda" else {}))
    data = torch.utils.data.DataLoader(Batches(tok, train_ids, words, args.seed, args.batch, args.seq, vocab, args.packed_bos),
                                       batch_size=None, num_workers=args.workers, pin_memory=dev == "cuda",
                                       **({"prefetch_factor": 4, "persistent_workers": True} if args.workers else {}))
    budget = min(args.time_budget, args.deadline - (time.time() - t0))
    log, step, t_train, progress = [], 0, time.time(), 0.0
    it = iter(data)
    while progress < 1.0:
        x, w = next(it)
        x, w = x.to(dev, non_blocking=True), w.to(dev, non_blocking=True)
        lr_scale = min(1.0, (step + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
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
        progress = max(step / args.steps, (time.time() - t_train) / budget)
        if step % 50 == 0 or step == 1 or progress >= 1.0:
            plain = ce.mean().item()
            log.append({"step": step, "seconds": round(time.time() - t_train, 1), "loss": round(loss.item(), 4),
                        "lm_loss": round(plain, 4), "lr": args.lr * lr_scale})
            print(json.dumps(log[-1]), flush=True)
    train_s = time.time() - t_train
    save_hf(model, args.out)
    if not args.debug:
        C.save_tokenizer(tok, args.out, max_len=args.max_pos)
    summary = {"steps": step, "train_seconds": round(train_s, 1), "total_seconds": round(time.time() - t0, 1),
               "tokens_seen": step * args.batch * args.seq, "parameters": n_params, "batch": args.batch,
               "seq": args.seq, "lr": args.lr, "weight_decay": args.wd, "packed_bos": args.packed_bos, "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
               "torch": torch.__version__, "stopped_by": "steps" if step >= args.steps else "time", "log": log}
    with open(os.path.join(args.out, "training_log.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"trained {step} steps in {train_s:.0f}s", flush=True)


if __name__ == "__main__":
    main()
