"""Re-runs the masking section of a finished evaluation, e.g. on a CPU when the device run ran out of time.

    python3 resources/recipe/masking.py --model MODEL --eval EVALDIR     (EVALDIR: evaluate.py's --out)

Reads EVALDIR/reference/passkey.jsonl and the detected heads (retrieval_heads_gt_0.1) from
EVALDIR/summary.json, runs evaluate.masking_check (the same code as evaluate.py's `masking` section,
float32, eager attention with a KV cache) and writes the result into summary.json as "masking".
Without the `tokenizers` package, token ids are decoded from tokenizer.json's byte-level vocabulary.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evaluate import masking_check  # noqa: E402
from model import load_hf  # noqa: E402


class ByteLevelDecoder:
    """decode() of a byte-level BPE tokenizer.json (GPT-2 byte-to-unicode map), special tokens skipped."""

    def __init__(self, path):
        with open(path) as f:
            tj = json.load(f)
        self.id_to_tok = {i: t for t, i in tj["model"]["vocab"].items()}
        self.special = {a["id"] for a in tj.get("added_tokens", []) if a.get("special")}
        bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
        cs, n = list(bs), 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        self.byte_of = {chr(c): b for b, c in zip(bs, cs)}

    def decode(self, ids):
        text = "".join(self.id_to_tok[i] for i in ids if i not in self.special)
        return bytes(self.byte_of[ch] for ch in text).decode("utf-8", errors="replace")

    def get_vocab_size(self):
        return len(self.id_to_tok)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--eval", required=True, help="evaluate.py's --out folder")
    ap.add_argument("--per-cell", type=int, default=10, help="prompts per (length, depth) cell, as evaluate.py")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    model = load_hf(args.model, dev)
    try:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    except ImportError:
        tok = ByteLevelDecoder(os.path.join(args.model, "tokenizer.json"))
    nl_ids = {i for i in range(tok.get_vocab_size()) if "\n" in tok.decode([i])}
    with open(os.path.join(args.eval, "reference", "passkey.jsonl")) as f:
        pk = [json.loads(line) for line in f]
    summary_path = os.path.join(args.eval, "summary.json")
    with open(summary_path) as f:
        S = json.load(f)
    heads = S["retrieval_heads_gt_0.1"]
    t = time.time()
    S["masking"] = masking_check(model, tok, pk, heads, args.per_cell, dev, nl_ids)
    S["timings_s"]["masking"] = round(time.time() - t, 1)
    S["masking"]["run_by"] = f"masking.py on {dev}, torch {torch.__version__}"
    with open(summary_path, "w") as f:
        json.dump(S, f, indent=1)
    print(json.dumps({k: v for k, v in S["masking"].items()}, indent=1))


if __name__ == "__main__":
    main()
