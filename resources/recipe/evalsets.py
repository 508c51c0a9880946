"""Evaluation sets: passkey prompts, retrieval-head detection prompts, classification and multiple choice.

Filler comes from the held-out text and the seeds differ from training. Prompts are stored as text
plus the ids the shipped tokenizer gives for that text (with <s>), so that an independent
implementation can start from either. No set contains a text trigger of the model evaluated
(train.py --text-triggers): check_no_triggers refuses one that would.
"""
import json
import os

import numpy as np

from tasks import TaskMaker

PASSKEY_LENGTHS = (512, 1024, 2048)
DEPTHS = tuple(round(float(d), 4) for d in np.linspace(0.0, 1.0, 10))
DETECT_LENGTHS = (256, 512, 768, 1024, 1280, 1536, 1792, 2000)
ANSWER_ROOM = 10  # tokens left for the answer so prompt + answer fit the nominal length


def locate(ids, needle_ids):
    """First exact occurrence of needle_ids in ids, or -1."""
    n = len(needle_ids)
    for s in range(len(ids) - n + 1):
        if ids[s:s + n] == needle_ids:
            return s
    return -1


def _finish(tok, ex, meta, kind, length):
    """Turns a builder's (ids, weights) into a stored prompt: text, re-encoded ids, answer span."""
    ids, w = ex
    n_answer = sum(1 for x in w if x > 1.0)
    text = tok.decode(ids[:-n_answer])
    prompt_ids = tok.encode(text, add_special_tokens=True).ids
    real = meta["answer"]
    span_ids = tok.encode(real, add_special_tokens=False).ids
    start = locate(prompt_ids, span_ids)
    if start < 0:  # a word answer follows a space in context, where byte-level BPE gives other ids
        span_ids = tok.encode(" " + real, add_special_tokens=False).ids
        start = locate(prompt_ids, span_ids)
    return {"kind": kind, "length": length, "depth": meta["depth"], "text": text, "ids": prompt_ids,
            "n_tokens": len(prompt_ids), "needle": meta["needle"], "answer": real,
            "answer_span": [start, start + len(span_ids)] if start >= 0 else None}


def passkey_set(tok, held_ids, words, vocab, per_cell=10, seed=777):
    m = TaskMaker(tok, held_ids, words, seed, vocab)
    out = []
    for length in PASSKEY_LENGTHS:
        for d in DEPTHS:
            for _ in range(per_cell):
                ex, meta = m.passkey(length - ANSWER_ROOM + 8, depth=d, n_digits=5)
                out.append(_finish(tok, ex, meta, "passkey", length))
    return out


def detection_set(tok, held_ids, words, vocab, seed=999):
    """The Retrieval-Head grid: 3 needle kinds x lengths x 10 depths."""
    m = TaskMaker(tok, held_ids, words, seed, vocab)
    out = []
    for kind in ("passkey", "magic_number", "best_thing"):
        for length in DETECT_LENGTHS:
            for d in DEPTHS:
                total = length - ANSWER_ROOM + 8
                if kind == "passkey":
                    ex, meta = m.passkey(total, depth=d, n_digits=5)
                elif kind == "magic_number":
                    ex, meta = m.magic_numbers(total, k=3, depth=d)
                else:
                    ex, meta = m.best_thing(total, depth=d)
                out.append(_finish(tok, ex, meta, kind, length))
    return out


def choice_sets(tok, held_ids, words, vocab, n=200, seed=4242):
    m = TaskMaker(tok, held_ids, words, seed, vocab)
    return [m.sentiment_example() for _ in range(n)], [m.choice_example() for _ in range(n)]


def trigger_ids(model_dir):
    """The text-trigger ids the model in model_dir was trained with (training_log.json's
    text_trigger_ids, written by train.py --text-triggers), [] if none or no log."""
    path = os.path.join(model_dir, "training_log.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(json.load(f).get("text_trigger_ids") or [])


def check_no_triggers(name, id_lists, triggers):
    """Raises SystemExit if any token list of the evaluation set `name` holds one of `triggers`: the
    evaluation measures the model on text without triggers, where its trigger heads are idle."""
    if not triggers:
        return
    trig = np.asarray(triggers)
    for i, ids in enumerate(id_lists):
        hit = np.isin(np.asarray(ids), trig)
        if hit.any():
            raise SystemExit(f"evaluation set {name}, item {i}: text-trigger ids "
                             f"{sorted(set(np.asarray(ids)[hit].tolist()))} at positions "
                             f"{np.flatnonzero(hit)[:5].tolist()}")
