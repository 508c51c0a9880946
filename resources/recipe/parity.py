"""Checks the shipped folder with transformers and writes the HF parity fixtures for HeadScope.

    python3 resources/recipe/parity.py --model resources/model --out tests/fixtures/parity/reference-model \
        --passkey tests/fixtures/reference/passkey.jsonl

transformers' LlamaForCausalLM (eager, float32, CPU) is the reference: its logits must equal the
recipe's own PyTorch model on the same weights, and its tokenizer must equal `tokenizers`.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import load_hf  # noqa: E402

TEXTS = [
    "Hello, world!",
    "The pass key is 68232. Remember it.",
    "What is the pass key? The pass key is",
    "  leading spaces and trailing spaces  ",
    "Tabs\tand\nnewlines\n\nand a blank line.",
    "Numbers: 3.14159, 1,000,000 and 2026-11-23.",
    "Contractions: don't, I'LL, we've, she'd, it's.",
    "Café, naïve, façade, Ångström, Straße.",
    "中文字符和日本語のテキスト",
    "Emoji: 🙂🚀 and symbols: © ® ™ § ¶ • …",
    "def f(x):\n    return x ** 2  # square\n",
    "https://example.org/path?query=1&b=2#frag",
    "UPPER lower MiXeD CaSe",
    "Review: The food was wonderful and the staff was lovely.\nSentiment:",
    "Question: Which of these is a fruit?\nA. red\nB. lion\nC. lemon\nD. saw\nAnswer:",
    "A hacker is a person who enjoys exploring the details of programmable systems.",
    "Q: Why did the chicken cross the road?\nA: To get to the other side.",
    "!!!???...,,,;;;:::",
    "a",
    "",
]
FORWARD_TEXT = [
    "The Jargon File is a comprehensive compendium of hacker slang illuminating many aspects of hackish "
    "tradition, folklore, and humor. It is a living document that grows and changes with the culture it "
    "describes, and the entries are written to be read for fun as well as for reference.",
    "Some special magic numbers are hidden inside the following text. Remember them.\nThe special magic "
    "number for garden is 4417203. A man walks into a bar and orders a drink; the bartender looks at him "
    "and says nothing at all. What is the special magic number for garden? The special magic number for garden is",
]
FORWARD_LEN = (64, 72)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--passkey", required=True)
    ap.add_argument("--report", default=None)
    args = ap.parse_args()
    import tokenizers
    import transformers
    from transformers import AutoTokenizer, LlamaForCausalLM

    torch.backends.cuda.matmul.allow_tf32 = False
    os.makedirs(args.out, exist_ok=True)
    try:
        hf = LlamaForCausalLM.from_pretrained(args.model, attn_implementation="eager", dtype=torch.float32)
    except TypeError:
        hf = LlamaForCausalLM.from_pretrained(args.model, attn_implementation="eager", torch_dtype=torch.float32)
    hf.eval()
    tok = AutoTokenizer.from_pretrained(args.model)
    raw = tokenizers.Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    ours = load_hf(args.model, "cpu")
    report = {"tokenizer_class": type(tok).__name__}

    tokenize = []
    mism = 0
    for t in TEXTS:
        ids = tok(t)["input_ids"]
        mism += int(ids != raw.encode(t).ids)
        tokenize.append({"text": t, "ids": ids})
    report["tokenizer_mismatches_vs_tokenizers"] = mism

    forward, worst = [], 0.0
    for i, (t, n) in enumerate(zip(FORWARD_TEXT, FORWARD_LEN)):
        ids = tok(t)["input_ids"][:n]
        assert len(ids) == n, f"forward text {i} gives {len(ids)} tokens, need {n}"
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = hf(x).logits[0].float()
            mine = ours(x, fast=False)[0][0].float()
        worst = max(worst, float((logits - mine).abs().max()))
        name = f"logits_{i}.npy"
        np.save(os.path.join(args.out, name), logits.numpy().astype(np.float32))
        forward.append({"ids": ids, "logits": name, "attn": None})
    report["max_abs_logit_diff_recipe_vs_hf"] = worst

    with open(args.passkey) as f:
        pk = [json.loads(line) for line in f]
    short = next(p for p in pk if p["length"] == 512)
    gens = []
    for ids in (short["ids"], tok(FORWARD_TEXT[1])["input_ids"]):
        x = torch.tensor([ids])
        with torch.no_grad():
            out = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=16, do_sample=False,
                              pad_token_id=hf.config.eos_token_id)
        gens.append({"ids": ids, "max_new_tokens": 16, "greedy": out[0, len(ids):].tolist()})
    report["passkey_generation"] = tok.decode(gens[0]["greedy"])
    report["passkey_answer"] = short["answer"]

    doc = {"case": "reference-model", "model": "resources/model",
           "generator": {"transformers": transformers.__version__, "torch": torch.__version__,
                         "tokenizers": tokenizers.__version__},
           "tokenize": tokenize, "forward": forward, "generate": gens}
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(doc, f)
    print(json.dumps(report, ensure_ascii=False), flush=True)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
