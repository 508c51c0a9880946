#!/usr/bin/env python3
"""Summary of one Nsight Compute kernel profile (profile_stats.sh): the headline metrics of the details
page, then the SASS source page's warp-stall samples per opcode and per stall column, and the busiest
instructions. usage: summarise_ncu.py DETAILS.txt SASS.csv"""
import collections
import csv
import re
import sys

KEYS = ("Duration", "Compute (SM) Throughput", "Memory Throughput", "Executed Ipc Active", "Issue Slots Busy",
        "Issued Warp Per Scheduler", "No Eligible", "Active Warps Per Scheduler", "Eligible Warps Per Scheduler",
        "Warp Cycles Per Issued Instruction", "Registers Per Thread", "Achieved Occupancy", "Executed Instructions",
        "L1/TEX Hit Rate", "L2 Hit Rate", "Shared Memory Configuration Size", "Block Limit Registers", "SM Busy")


def details(path):
    for line in open(path, errors="replace"):
        s = line.strip()
        if any(s.startswith(k) for k in KEYS):
            print("  " + re.sub(r"\s{2,}", "  ", s))
        elif "Tensor" in s and ("%" in s or "pipe" in s.lower()):
            print("  " + re.sub(r"\s{2,}", "  ", s))


def number(x):
    try:
        return float(str(x).replace(",", ""))
    except ValueError:
        return 0.0


def sass(path):
    lines = open(path, errors="replace").read().splitlines()
    start = next((i for i, l in enumerate(lines) if "Source" in l and ("Address" in l or "#" in l)), None)
    if start is None:
        print("  no SASS table in", path)
        print("\n".join(lines[:10]))
        return
    rows = list(csv.DictReader(lines[start:]))
    cols = list(rows[0].keys()) if rows else []
    all_col = next((c for c in cols if "All Samples" in c), None) or next((c for c in cols if "Samples" in c), None)
    stall_cols = [c for c in cols if c.lower().startswith("stall") or "stall_" in c.lower()]
    exec_col = next((c for c in cols if c.strip() == "Instructions Executed"), None)
    print(f"  columns: {len(cols)}; samples column: {all_col}; stall columns: {len(stall_cols)}")
    if not all_col:
        print("  columns are:", cols)
        return
    by_op = collections.Counter()
    exec_op = collections.Counter()
    total = 0.0
    for r in rows:
        src = r.get("Source", "").strip()
        op = re.sub(r"^@!?U?P\w+\s+", "", src).split(" ")[0].split(".")[0] if src else "?"
        n = number(r.get(all_col, 0))
        by_op[op] += n
        total += n
        if exec_col:
            exec_op[op] += number(r.get(exec_col, 0))
    etotal = sum(exec_op.values()) or 1.0
    print(f"  samples {total:.0f}; warp instructions executed {etotal:.3e}")
    print("  opcode: % of stall samples (% of executed instructions)")
    for op, n in by_op.most_common(22):
        print(f"    {op:10s} {100 * n / max(total, 1):5.1f}%  ({100 * exec_op[op] / etotal:5.1f}%)")
    if stall_cols:
        sums = {c: sum(number(r.get(c, 0)) for r in rows) for c in stall_cols}
        st = sum(sums.values()) or 1.0
        print("  stall columns (% of their sum):")
        for c, v in sorted(sums.items(), key=lambda kv: -kv[1])[:14]:
            print(f"    {c:48s} {100 * v / st:5.1f}%")
    print("  busiest instructions:")
    for r in sorted(rows, key=lambda r: -number(r.get(all_col, 0)))[:20]:
        print(f"    {number(r.get(all_col, 0)):8.0f}  {r.get('Address', r.get('# Address', ''))}  {r.get('Source', '')[:70]}")


if __name__ == "__main__":
    print("details:")
    details(sys.argv[1])
    print("sass:")
    sass(sys.argv[2])
