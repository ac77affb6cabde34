"""The report's figures (matplotlib, Agg backend, imported only when drawing): training curves,
top people, probability mass by field and era against the pool, eval accuracies and differences
with intervals, and field mass across runs. Each takes polars frames and a path, returns the path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

KIND_COLOURS = {"none": "#444444", "learned": "#d62728", "random": "#1f77b4",
                "handwritten": "#2ca02c", "named": "#9467bd", "paraphrase": "#8c8c8c"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def fig_training(curve: pl.DataFrame, path: Path, title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    it = curve["iteration"].to_numpy()
    ax[0].fill_between(it, curve["lo"].to_numpy(), curve["hi"].to_numpy(), alpha=0.25,
                       label="±1 std over the K samples")
    reward, base = curve["mean_reward"].to_numpy(), curve["baseline"].to_numpy()
    ax[0].plot(it, reward, lw=0.8, label="mean reward")
    if len(it) >= 10:  # the per-iteration mean is noisy (B questions): show the trend too
        w = max(5, len(it) // 10)
        trend = np.convolve(reward, np.ones(w) / w, mode="valid")
        ax[0].plot(it[w - 1:], trend, color="black", lw=1.5, label=f"mean reward, {w}-iteration "
                   "moving average")
    if not np.allclose(base, reward, equal_nan=True):  # rloo's mean baseline IS the mean reward
        ax[0].plot(it, base, "--", lw=0.8, label="baseline")
    ax[0].set(xlabel="iteration", ylabel="reward", title="Reward per iteration")
    ax[0].legend(fontsize=8)
    ax[1].plot(it, curve["entropy"].to_numpy(), color="tab:purple")
    ax[1].set(xlabel="iteration", ylabel="entropy (nats)", title="Policy entropy")
    ax[2].plot(it, curve["top_prob"].to_numpy(), color="tab:red")
    ax[2].set(xlabel="iteration", ylabel="probability", title="Top person's probability")
    fig.suptitle(title)
    return _save(fig, path)


def _field_colours(fields: list[str]) -> dict[str, Any]:
    cmap = _plt().get_cmap("tab20")
    return {f: cmap(i % 20) for i, f in enumerate(sorted(set(fields)))}


def fig_top_people(top: pl.DataFrame, path: Path, title: str, num_people: int = 0) -> Path:
    plt = _plt()
    colours = _field_colours(top["field"].to_list())
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(9, 7))
    y = np.arange(len(top))[::-1]
    ax.barh(y, top["prob"].to_numpy(), color=[colours[f] for f in top["field"]])
    labels = [f"{n} ({e})" for n, e in zip(top["name"], top["era"], strict=True)]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set(xlabel="final policy probability", title=title)
    ax.set_xlim(0, float(top["prob"].max()) * 1.08 if len(top) else 1)
    handles = [Patch(color=c, label=f) for f, c in colours.items()]
    if num_people:
        ax.axvline(1 / num_people, color="grey", ls=":")
        handles.append(Line2D([], [], color="grey", ls=":", label=f"uniform (1/{num_people:,})"))
    ax.legend(handles=handles, title="field", fontsize=7, loc="lower right")
    return _save(fig, path)


def fig_mass(field_mass: pl.DataFrame, era_mass: pl.DataFrame, path: Path, title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [2, 1]})
    for a, df, col in ((ax[0], field_mass, "field"), (ax[1], era_mass, "era")):
        x = np.arange(len(df))
        a.bar(x - 0.2, df["mass"].to_numpy(), 0.4, label="learned probability mass")
        a.bar(x + 0.2, df["pool_share"].to_numpy(), 0.4, label="share of the pool")
        a.set_xticks(x, df[col].to_list(), rotation=60, ha="right", fontsize=8)
        a.set(xlabel=col, ylabel="fraction", title=f"Probability mass by {col} vs pool share")
        a.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def fig_eval(summary: pl.DataFrame, path: Path, title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(14, max(4, 0.35 * len(summary) + 1.5)))
    y = np.arange(len(summary))[::-1]
    sig = summary["significant"].to_list() if "significant" in summary.columns else []
    sig = sig or [False] * len(summary)
    labels = [f"{p[:40]} [{k}]{' *' if s and k != 'none' else ''}"
              for p, k, s in zip(summary["prefix"], summary["prefix_kind"], sig, strict=True)]
    colours = [KIND_COLOURS.get(k, "k") for k in summary["prefix_kind"]]
    for a, mid, lo, hi, xl in (
        (ax[0], "accuracy", "ci_low", "ci_high", "held-out accuracy (95% Wilson CI)"),
        (ax[1], "diff_vs_none", "diff_low", "diff_high",
         "difference vs no prefix (95% paired bootstrap CI)"),
    ):
        m = summary[mid].to_numpy() * 100
        err = np.abs(np.vstack([m - summary[lo].to_numpy() * 100,
                                summary[hi].to_numpy() * 100 - m]))
        for i, c in enumerate(colours):  # errorbar takes one colour per call
            a.errorbar(m[i], y[i], xerr=err[:, i : i + 1], fmt="none", ecolor=c, capsize=3)
        a.scatter(m, y, c=colours, zorder=3)
        a.set_yticks(y, labels, fontsize=8)
        a.set(xlabel=xl + " [points]")
    none_acc = summary.filter(pl.col("prefix_kind") == "none")["accuracy"]
    if len(none_acc):
        ax[0].axvline(none_acc[0] * 100, color="grey", ls=":", label="no prefix")
        ax[0].legend(fontsize=8)
    ax[1].axvline(0, color="grey", ls=":")
    ax[0].set_title("Accuracy per prefix")
    ax[1].set_title("Paired difference vs no prefix")
    fig.suptitle(f"{title}\n* = differs from no prefix after Holm correction (p_holm < 0.05)",
                 fontsize=10)
    return _save(fig, path)


def fig_field_mass_runs(table: pl.DataFrame, path: Path) -> Path:
    plt = _plt()
    labels = [c for c in table.columns if c != "field"]
    fig, ax = plt.subplots(figsize=(14, 5))
    x = np.arange(len(table))
    w = 0.8 / len(labels)
    for i, lab in enumerate(labels):
        ax.bar(x + (i - (len(labels) - 1) / 2) * w, table[lab].to_numpy(), w, label=lab)
    ax.set_xticks(x, table["field"].to_list(), rotation=60, ha="right", fontsize=8)
    ax.set(xlabel="field", ylabel="learned probability mass",
           title="Probability mass by field, run by run")
    ax.legend(fontsize=8)
    return _save(fig, path)


# --- the report -------------------------------------------------------------------------------


def fig_context_field(mass: pl.DataFrame, path: Path, title: str) -> Path:
    """Heat map, contexts (rows) x fields (columns), of each context's probability mass; a cell
    is annotated with its mass when the map is small enough to read."""
    plt = _plt()
    wide = mass.pivot(on="field", index="context", values="mass").fill_null(0.0).sort("context")
    fields = [c for c in wide.columns if c != "context"]
    grid = wide.select(fields).to_numpy()  # (C, F)
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(fields) + 2),
                                    max(2.5, 0.32 * len(grid) + 1.5)))
    im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=max(grid.max(), 1e-9))
    ax.set_xticks(range(len(fields)), fields, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(grid)), wide["context"].to_list(), fontsize=7 if len(grid) > 20
                  else 9)
    if grid.size <= 200:
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if v < 0.6 * grid.max() else "black")
    fig.colorbar(im, ax=ax, label="probability mass")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)

