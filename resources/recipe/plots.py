"""Draws the two figures of docs/reference-model.md from the installed tables (needs matplotlib).

    python3 resources/recipe/plots.py
"""
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    with open(os.path.join(ROOT, "tests/fixtures/reference/summary.json")) as f:
        s = json.load(f)
    with open(os.path.join(ROOT, "resources/model/training_log.json")) as f:
        log = json.load(f)

    names = [("sink_mass", "sink mass on token 0"), ("previous_token", "previous-token score"),
             ("induction", "induction score"), ("retrieval_score", "retrieval score")]
    wide = len(s["sink_mass"][0]) > 8
    fig, axes = plt.subplots(2, 2, figsize=(16, 9)) if wide else plt.subplots(1, 4, figsize=(16, 4))
    axes = np.ravel(axes)
    for ax, (key, title) in zip(axes, names):
        t = np.array(s[key])
        im = ax.imshow(t, vmin=0, vmax=1, cmap="viridis")
        ax.set_title(title)
        ax.set_xlabel("query head")
        ax.set_ylabel("layer")
        for (i, j), v in np.ndenumerate(t):
            if v >= 0.1:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.savefig(os.path.join(ROOT, "docs/reference-model-heads.png"), dpi=80, bbox_inches="tight")

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    steps = [r["step"] for r in log["log"]]
    a.plot(steps, [r["loss"] for r in log["log"]], label="weighted training loss")
    a.plot(steps, [r["lm_loss"] for r in log["log"]], label="plain LM loss (all tokens)")
    a.set_xlabel("step (32 x 2048 tokens)")
    a.set_ylabel("cross-entropy (nats)")
    a.set_ylim(1, 8.5)
    for seg in log.get("segments", [])[1:]:  # a resumed segment starts here (re-warm-up of the learning rate)
        a.axvline(seg["resumed_from_step"], color="grey", linestyle=":", label="resumed (next device command)")
    a.legend()
    a.set_title("training loss")
    m = s["masking"]
    lengths = sorted(s["passkey_accuracy"], key=int)
    x = np.arange(len(lengths))
    b.bar(x - 0.27, [s["passkey_accuracy"][k] for k in lengths], 0.27, label="no mask (all 300 prompts)")
    b.bar(x, [m["random_masked_mean"][k] for k in lengths], 0.27, label=f"{m['k']} random heads masked (mean of 5)")
    b.bar(x + 0.27, [m["retrieval_masked"][k] for k in lengths], 0.27, label=f"{m['k']} retrieval heads masked")
    b.set_xticks(x, [f"{k} tokens" for k in lengths])
    b.set_ylabel("passkey accuracy (%)")
    b.set_ylim(0, 105)
    b.legend(loc="lower left", fontsize=8)
    b.set_title("passkey retrieval")
    fig.savefig(os.path.join(ROOT, "docs/reference-model-training.png"), dpi=80, bbox_inches="tight")


if __name__ == "__main__":
    main()
