"""Draws the figures of docs/reference-model.md from the installed tables (needs matplotlib).

    python3 resources/recipe/plots.py            # heads and training figures of the shipped model
    python3 resources/recipe/plots.py --trials   # the sink trials figure, from resources/recipe/trials/run6.json
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def trials_figure():
    """Runs 6a-6c (sink_trials.py's JSON): the sink probe during training, run 6c's sink mass per head, and
    how many heads rest on token 0 when the same windows open with text or like a training sequence."""
    with open(os.path.join(ROOT, "resources/recipe/trials/run6.json")) as f:
        t = json.load(f)
    ms = t["models"]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(18, 4.2), gridspec_kw={"width_ratios": [1.1, 1.4, 1]})
    style = {"run4": ("black", "run 4 (shipped)"), "6a": ("tab:blue", "6a: more plain training"),
             "6c": ("tab:red", "6b + 6c: Bigram-Backcopy in 25% of sequences")}
    for name, (colour, label) in style.items():
        pr = np.array(ms[name]["probe"])
        if name != "run4":
            pr = pr[pr[:, 0] > ms["run4"]["training"]["steps"]]
        a.plot(pr[:, 0], pr[:, 1], "o-", color=colour, ms=3, label=label)
    a.axhline(56.5, color="grey", linestyle="--", label="most heads (57 of 112)")
    a.set_xlabel("step (32 x 2048 tokens)")
    a.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(6))
    a.set_ylabel("heads of layers 1-7 with m >= 0.2")
    a.set_title("sink probe during training (4 held-out windows)")
    a.legend(fontsize=8, loc="center left")
    m = np.array(ms["6c"]["sink_mass"])
    im = b.imshow(m, vmin=0, vmax=1, cmap="viridis")
    for (i, j), v in np.ndenumerate(m):
        if v >= 0.2:
            b.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    b.set_xlabel("query head")
    b.set_ylabel("layer")
    b.set_title("run 6c: m on token 0, <s> + 1023 held-out tokens")
    fig.colorbar(im, ax=b, shrink=0.8)
    names = ["run4", "6a", "6b", "6c"]
    x = np.arange(len(names))
    for k, (variant, label) in enumerate((("plain", "<s> + text (the protocol)"),
                                          ("intro", "<s> + passkey intro line + text"))):
        vals = [ms[n][variant]["heads_ge_0.2"] for n in names]
        bars = c.bar(x + (k - 0.5) * 0.38, vals, 0.38, label=label)
        for bar, n in zip(bars, names):
            c.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.5, f"{ms[n][variant]['ppl']:.0f}",
                   ha="center", fontsize=8)
    c.set_xticks(x, names)
    c.set_ylabel("heads of layers 1-7 with m >= 0.2")
    c.set_ylim(0, 30)
    c.set_title("how the window opens (16 windows; numbers: perplexity)")
    c.legend(fontsize=8, loc="upper left")
    fig.savefig(os.path.join(ROOT, "docs/reference-model-sink-trials.png"), dpi=80, bbox_inches="tight")


def main():
    if "--trials" in sys.argv[1:]:
        trials_figure()
        return
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
