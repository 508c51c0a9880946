"""Copies a retrain.sh run (its WORKDIR, or the unpacked device tarballs) into the repository.

    python3 resources/recipe/install.py WORKDIR

model/ -> resources/model/ (README.md kept), eval/reference/ -> tests/fixtures/reference/,
eval/eval/ -> resources/eval/, parity/ -> tests/fixtures/parity/reference-model/, and the per-head
tables of eval/summary.json -> tests/fixtures/reference/head_tables.json.
"""
import json
import os
import shutil
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TABLES = ("sink_mass", "sink_mass_last_quarter", "sink_top_received", "previous_token", "duplicate_token",
          "induction", "retrieval_score")


def copy_dir(src, dst, keep=("README.md",)):
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(dst):
        if name not in keep and os.path.isfile(os.path.join(dst, name)):
            os.remove(os.path.join(dst, name))
    for name in os.listdir(src):
        shutil.copy2(os.path.join(src, name), os.path.join(dst, name))


def main():
    work = sys.argv[1]
    copy_dir(os.path.join(work, "model"), os.path.join(ROOT, "resources/model"))
    ref = os.path.join(ROOT, "tests/fixtures/reference")
    copy_dir(os.path.join(work, "eval/reference"), ref)
    copy_dir(os.path.join(work, "eval/eval"), os.path.join(ROOT, "resources/eval"))
    copy_dir(os.path.join(work, "parity"), os.path.join(ROOT, "tests/fixtures/parity/reference-model"))
    with open(os.path.join(work, "eval/summary.json")) as f:
        s = json.load(f)
    heads = {"model": "resources/model", "layers": s["layers"], "heads": s["heads"], "kv_heads": s["kv_heads"]}
    heads.update({k: s[k] for k in TABLES if k in s})
    with open(os.path.join(ref, "head_tables.json"), "w") as f:
        json.dump(heads, f, indent=1)
    shutil.copy2(os.path.join(work, "eval/summary.json"), os.path.join(ref, "summary.json"))


if __name__ == "__main__":
    main()
