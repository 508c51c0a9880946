"""Re-runs the secondary-sink section of the evaluation where the `tokenizers` package is missing: the
held-out text is tokenized by HeadScope's own tokenizer (`headscope tokenize`, which gives Hugging
Face's ids; tests/tokenizers checks that), then evaluate.secondary_sinks (the same code as
evaluate.py's `secondary` section) runs on the first 8 held-out windows, on the CPU.

    python3 resources/recipe/secondary.py --model resources/model --debs .tdata \
        --headscope build/app/headscope --out secondary.json

Writes the section's summary (the keys evaluate.py puts under "secondary_sinks") as JSON.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus as C  # noqa: E402
from evaluate import chunks, label_sink, secondary_sinks  # noqa: E402
from masking import ByteLevelDecoder  # noqa: E402
from model import load_hf  # noqa: E402


class CliTokenizer(ByteLevelDecoder):
    """encode_batch() through `headscope tokenize --no-special-tokens`, decode() from tokenizer.json."""

    def __init__(self, model, binary, jobs):
        super().__init__(os.path.join(model, "tokenizer.json"))
        self.model, self.binary, self.jobs = model, binary, jobs

    def _encode(self, text):
        r = subprocess.run([self.binary, "tokenize", "--model", self.model, "--no-special-tokens", "--text=" + text],
                           capture_output=True, text=True, check=True)
        return [int(x) for x in r.stdout.split()]

    def encode_ids(self, texts):
        with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
            return list(pool.map(self._encode, texts))


def held_out_ids(tok, debs, work):
    """The held-out text of the Debian packages in `debs` (unpacked under `work`) tokenized by `tok` as
    train.encode_docs does: each document, then "\n\n". Returns (int32 ids, number of documents)."""
    root = os.path.join(work, "debroot")
    C.unpack_debs(debs, root)
    _, held_docs = C.load_texts(root, gcide_chars=1000)  # held-out text does not depend on GCIDE
    sep = tok._encode("\n\n")
    held = []
    for ids in tok.encode_ids(held_docs):
        held += ids + sep
    return np.array(held, dtype=np.int32), len(held_docs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--debs", required=True)
    ap.add_argument("--headscope", required=True, help="the headscope CLI binary")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/hs_refmodel")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    t0 = time.time()
    tok = CliTokenizer(args.model, args.headscope, args.jobs)
    held_ids, n_docs = held_out_ids(tok, args.debs, args.work)
    print(f"{n_docs} held-out documents, {len(held_ids)} tokens ({time.time() - t0:.0f} s)", flush=True)

    model = load_hf(args.model, "cpu")
    L = model.s.num_hidden_layers
    batches = chunks(held_ids, 1024, 16)[:8]
    found, clip = secondary_sinks(model, batches, "cpu", L, tok)
    life = [len(f["layers_in_window"]) for f in found]
    out = {"layer_windows": clip, "candidates": len(found),
           "labels": {lab: sum(1 for x in life if x > 0 and label_sink(x, L) == lab)
                      for lab in ("primary", "secondary", "noise")},
           "lifetime_hist_all_layers": {str(k): sum(1 for f in found if len(f["layers_all"]) == k)
                                        for k in range(1, L + 1)},
           "positions": sorted({f["pos"] for f in found}),
           "examples": sorted(found, key=lambda f: -len(f["layers_all"]))[:30],
           "held_tokens": int(len(held_ids)), "windows": len(batches), "torch": torch.__version__,
           "seconds": round(time.time() - t0, 1)}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps({k: out[k] for k in ("layer_windows", "candidates", "labels", "lifetime_hist_all_layers",
                                          "positions")}))


if __name__ == "__main__":
    main()
