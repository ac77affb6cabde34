"""The study report's figures (matplotlib, Agg, via figures.py's helpers): the transfer matrix
as an annotated heat map, learned vs none per model with intervals, budget curves, field mass
per row side by side, and the JSD / top-20 overlap matrices. Each takes the report's polars
tables and returns the paths it wrote.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl

from prefixopt.report.figures import _plt, _save


def _interval(r: dict) -> str:
    star = " *" if r["significant"] else ""
    return f"{100 * r['diff']:+.1f}{star}\n[{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]"


def fig_transfer(t: pl.DataFrame, path: Path, title: str) -> Path:
    """Rows: trained on; columns: evaluated on; colour: learned - none in points."""
    plt = _plt()
    rows, cols = list(dict.fromkeys(t["trained_on"])), list(dict.fromkeys(t["evaluated_on"]))
    m = np.full((len(rows), len(cols)), np.nan)  # (rows, cols) points
    text = {}
    for r in t.iter_rows(named=True):
        i, j = rows.index(r["trained_on"]), cols.index(r["evaluated_on"])
        m[i, j], text[i, j] = 100 * r["diff"], _interval(r)
    lim = max(1.0, float(np.nanmax(np.abs(m))) if np.isfinite(m).any() else 1.0)
    fig, ax = plt.subplots(figsize=(2.6 * len(cols) + 4, 1.1 * len(rows) + 2))
    im = ax.imshow(m, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for (i, j), s in text.items():  # white on the dark ends of the colour map
        ax.text(j, i, s, ha="center", va="center", fontsize=9,
                color="white" if abs(m[i, j]) > 0.6 * lim else "black")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set(xlabel="evaluated on", ylabel="trained on (largest budget, seeds pooled)")
    fig.colorbar(im, ax=ax, label="learned - no prefix [points]")
    ax.set_title(f"{title}\nheld-out learned vs no prefix, 95% paired bootstrap CI; "
                 "* = interval excludes 0", fontsize=10)
    return _save(fig, path)


def fig_learned_vs_none(t: pl.DataFrame, path: Path, title: str) -> Path:
    """The own-benchmark cells of the transfer table, one row each, grouped by model."""
    plt = _plt()
    own = t.filter(pl.col("own")).sort("model", "trained_on", "evaluated_on")
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(own) + 2))
    y = np.arange(len(own))[::-1]
    d = own["diff"].to_numpy() * 100
    err = np.vstack([d - own["low"].to_numpy() * 100, own["high"].to_numpy() * 100 - d])
    models = list(dict.fromkeys(own["model"]))
    colours = [_plt().get_cmap("tab10")(models.index(m) % 10) for m in own["model"]]
    for i in range(len(own)):
        ax.errorbar(d[i], y[i], xerr=err[:, i:i + 1], fmt="o", color=colours[i], capsize=3)
    ax.set_yticks(y, [f"{g} -> {b}{' *' if s else ''}" for g, b, s in
                      zip(own["trained_on"], own["evaluated_on"], own["significant"], strict=True)],
                  fontsize=8)
    ax.axvline(0, color="grey", ls=":")
    ax.set(xlabel="held-out accuracy, learned - no prefix [points] (95% paired bootstrap CI)",
           title=f"{title}: learned vs no prefix per model (* = interval excludes 0)")
    return _save(fig, path)


def fig_budget(b: pl.DataFrame, path: Path, title: str) -> Path:
    """Held-out difference (left) and planted mass (right, synthetic) against evaluations."""
    plt = _plt()
    planted = b["planted_mass"].drop_nulls().len() > 0
    fig, axes = plt.subplots(1, 2 if planted else 1, figsize=(14 if planted else 8, 5))
    axes = np.atleast_1d(axes)
    for k, ((group, bench), part) in enumerate(b.sort("evaluations").group_by(
            ["group", "evaluated_on"], maintain_order=True)):
        part = part.filter(pl.col("diff").is_not_null())
        # lines side by side a little (log x): equal budgets would hide each other's bars
        x = part["evaluations"].to_numpy() * (1 + 0.015 * k)
        d = part["diff"].to_numpy() * 100
        err = np.vstack([d - part["low"].to_numpy() * 100, part["high"].to_numpy() * 100 - d])
        axes[0].errorbar(x, d, yerr=err, marker="o", capsize=3, label=f"{group} -> {bench}")
    axes[0].axhline(0, color="grey", ls=":")
    axes[0].set(xscale="log", xlabel="question evaluations (training budget)",
                ylabel="learned - no prefix [points]", title="Held-out difference vs budget")
    axes[0].legend(fontsize=7)
    if planted:
        m = b.unique(["group", "budget"], maintain_order=True).sort("evaluations")
        for (group,), part in m.group_by(["group"], maintain_order=True):
            x, y = part["evaluations"].to_numpy(), part["planted_mass"].to_numpy()
            lo = y - part["planted_mass_min"].to_numpy()
            hi = part["planted_mass_max"].to_numpy() - y
            axes[1].errorbar(x, y, yerr=np.vstack([lo, hi]), marker="o", capsize=3, label=group)
        axes[1].set(xscale="log", ylim=(0, 1), xlabel="question evaluations (training budget)",
                    ylabel="probability mass on the planted people",
                    title="Planted mass vs budget (mean; bars: min-max over seeds)")
        axes[1].legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)


def fig_matrices(jsd: pl.DataFrame, overlap: pl.DataFrame, path: Path, title: str) -> Path:
    """JSD (colour scaled to the largest value, so replicate noise and row differences are
    told apart) and shared top-20 people, row group x row group."""
    plt = _plt()
    groups = jsd["group"].to_list()
    size = 1.1 * len(groups) + 4
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 2, size))
    m_jsd = jsd.select(groups).to_numpy()  # (G, G)
    top = float(np.nanmax(m_jsd)) if np.isfinite(m_jsd).any() else 1.0
    for ax, m, label, fmt, vmax in (
            (axes[0], m_jsd, "Jensen-Shannon divergence [bits]", "{:.3f}", max(top, 1e-6)),
            (axes[1], overlap.select(groups).to_numpy(), "shared top-20 people", "{:.1f}", 20)):
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=vmax)
        for i in range(len(groups)):
            for j in range(len(groups)):
                v = m[i, j]
                ax.text(j, i, "n/a" if math.isnan(v) else fmt.format(v), ha="center",
                        va="center", color="white" if v < 0.6 * vmax else "black", fontsize=9)
        ax.set_xticks(range(len(groups)), groups, rotation=35, ha="right", fontsize=7)
        ax.set_yticks(range(len(groups)), groups, fontsize=7)
        fig.colorbar(im, ax=ax, label=label, shrink=0.8)
        ax.set_title(f"{title}\n{label}, mean over run pairs\n(diagonal: between seeds of the "
                     "same settings)", fontsize=9)
    return _save(fig, path)


def fig_field_mass(table: pl.DataFrame, path: Path, title: str) -> Path:
    """Mass by field per row (mean over seeds), the pool share in grey beside them."""
    plt = _plt()
    labels = [c for c in table.columns if c not in ("field", "pool_share")]
    fig, ax = plt.subplots(figsize=(14, 5))
    x = np.arange(len(table))
    w = 0.8 / (len(labels) + 1)
    for i, lab in enumerate([*labels, "pool_share"]):
        ax.bar(x + (i - len(labels) / 2) * w, table[lab].to_numpy(), w,
               label="share of the pool" if lab == "pool_share" else lab,
               color="lightgrey" if lab == "pool_share" else None)
    ax.set_xticks(x, table["field"].to_list(), rotation=60, ha="right", fontsize=8)
    ax.set(xlabel="field", ylabel="learned probability mass", title=title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def study_figures(tables: dict[str, pl.DataFrame], out: Path, name: str) -> list[Path]:
    figs = []
    t = tables["transfer"]
    if len(t):
        figs.append(fig_transfer(t, out / "transfer_matrix.png", f"Study {name}: transfer"))
        if t["own"].any():
            figs.append(fig_learned_vs_none(t, out / "learned_vs_none.png", f"Study {name}"))
    if len(tables["budget"]) and tables["budget"]["diff"].drop_nulls().len():
        figs.append(fig_budget(tables["budget"], out / "budget_curves.png",
                               f"Study {name}: budget curves"))
    if "field_mass" in tables:
        figs.append(fig_field_mass(tables["field_mass"], out / "field_mass.png",
                                   f"Study {name}: probability mass by field (mean over seeds, "
                                   "largest budget)"))
    if len(tables["jsd"]) > 1:
        figs.append(fig_matrices(tables["jsd"], tables["top_overlap"],
                                 out / "distribution_matrices.png",
                                 f"Study {name}: learned distributions (largest budget)"))
    return figs
