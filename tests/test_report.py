"""`prefixopt report` from synthetic runs: the report's numbers equal a direct polars/numpy
computation over the run's files; figures are non-empty PNGs; several runs compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_evaluate import planted_engine, simulate_run

from prefixopt import cli, evaluate, report, runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    a = simulate_run(tmp, "field")
    b = simulate_run(tmp, "null", "--null", "--seed", "1")
    for run, delta, seed in ((a, 0.2, 0), (b, 0.0, 1)):
        cfg = evaluate.config_for_run(run, num_questions=120, bootstrap_samples=500)
        evaluate.evaluate(cfg, run, planted_engine(run, delta, seed))
    return a, b


def test_report_numbers_equal_direct_computation(two_runs):
    run, _ = two_runs
    res = report.build_report([run])
    nums = res["numbers"][run.name]
    # training curve: straight from the iterations Parquet parts
    iters = pl.read_parquet(run / "iterations" / "*.parquet").sort("iteration")
    assert nums["iterations"] == len(iters)
    assert nums["final_mean_reward"] == pytest.approx(iters["mean_reward"][-1])
    assert nums["final_entropy"] == pytest.approx(iters["entropy"][-1])
    # field mass: the checkpoint's probabilities summed per field with numpy
    probs = np.load(run / "checkpoints" / "latest.npz")["probs"]
    people = runs.run_people(run)
    mass = np.bincount(people.field_index, weights=probs, minlength=len(people.fields))
    assert nums["top_field"] == people.fields[int(mass.argmax())]
    assert nums["top_field_mass"] == pytest.approx(mass.max())
    assert nums["top_person"] == people.names[int(probs.argmax())]
    # eval: accuracies and the learned-vs-random contrast from the rows Parquet
    rows = pl.read_parquet(run / "eval" / "test_n120_seed0.parquet")
    ev = nums["eval/test_n120_seed0"]
    acc = rows.group_by("prefix").agg(pl.col("correct").mean())
    for prefix, a in acc.iter_rows():
        assert ev["accuracy"][prefix] == pytest.approx(a)
    kind = rows.group_by("prefix_kind").agg(pl.col("correct").mean())
    kind = dict(kind.iter_rows())
    assert ev["contrasts"]["learned vs random"]["diff"] == pytest.approx(
        kind["learned"] - kind["random"])
    c = ev["contrasts"]["learned vs random"]
    assert c["low"] <= c["diff"] <= c["high"]
    assert ev["contrasts"]["learned vs none"]["diff"] == pytest.approx(
        kind["learned"] - kind["none"])
    # training reward by field (question 2): straight from the samples Parquet parts
    samples = pl.read_parquet(run / "samples" / "*.parquet")
    by_field = samples.group_by("field").agg(n=pl.len(), r=pl.col("reward").mean())
    assert len(nums["field_reward"]) == len(by_field)
    for f, k, r in by_field.iter_rows():
        assert nums["field_reward"][f]["samples"] == k
        assert nums["field_reward"][f]["mean_reward"] == pytest.approx(r)
    # Holm across every prefix compared with none, recomputed from the rows (exact McNemar)
    from scipy.stats import binomtest

    wide = rows.pivot(on="prefix_index", index="question_id", values="correct").sort(
        "question_id")
    labels = rows.group_by("prefix_index").agg(pl.col("prefix").first(),
                                               pl.col("prefix_kind").first()).sort("prefix_index")
    none_col = wide[str(labels.filter(pl.col("prefix_kind") == "none")["prefix_index"][0])]
    others = labels.filter(pl.col("prefix_kind") != "none")
    pvals = []
    for i in others["prefix_index"]:
        col = wide[str(i)]
        b, c2 = int((col & ~none_col).sum()), int((~col & none_col).sum())
        pvals.append(binomtest(b, b + c2, 0.5).pvalue if b + c2 else 1.0)
    order = np.argsort(pvals, kind="stable")
    m = len(pvals)
    holm = np.maximum.accumulate([min(1.0, (m - r) * pvals[j]) for r, j in enumerate(order)])
    direct_holm = dict(zip([others["prefix"][int(j)] for j in order], holm))
    for prefix, ph in direct_holm.items():
        assert ev["p_holm"][prefix] == pytest.approx(ph)
    learned = others.filter(pl.col("prefix_kind") == "learned")["prefix"]
    assert ev["learned_significant"] == sum(direct_holm[x] < 0.05 for x in learned)
    # the winner's-curse gap: training reward (samples) minus held-out accuracy (eval rows)
    train_r = dict(samples.group_by("name").agg(pl.col("reward").mean()).iter_rows())
    for prefix in learned:
        assert ev["curse_gap"][prefix] == pytest.approx(train_r[prefix] - ev["accuracy"][prefix])
    # the report text carries those numbers and answers the five questions
    text = (run / "report" / "report.md").read_text()
    for q in ("**1.", "**2.", "**3.", "**4.", "**5."):
        assert q in text
    assert f"learned vs random {100 * c['diff']:+.1f} points" in text
    assert "is NOT evidence" in text  # concentration of the policy is not evidence
    assert (f"{ev['learned_significant']} of 5 learned people differ from no prefix after Holm"
            in text)
    for fig in res["figures"]:
        data = Path(fig).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    names = {f.rsplit("/", 1)[-1] for f in res["figures"]}
    assert {"training_curves.png", "top_people.png", "mass_by_field_era.png",
            "eval_test_n120_seed0.png"} <= names


def test_report_several_runs(two_runs, tmp_path):
    a, b = two_runs
    res = report.build_report([a, b], tmp_path / "cmp")
    cmp_ = res["numbers"]["comparison"]
    pa = np.load(a / "checkpoints" / "latest.npz")["probs"]
    pb = np.load(b / "checkpoints" / "latest.npz")["probs"]
    m = (pa + pb) / 2
    direct = 0.5 * np.sum(pa * np.log2(pa / m)) + 0.5 * np.sum(pb * np.log2(pb / m))
    assert cmp_["jsd"][0]["jsd_bits"] == pytest.approx(direct)
    # field mass side by side: the people table joined with each checkpoint, summed in polars
    people = runs.run_people(a).frame.select("person_id", "field")
    for run, probs in ((a, pa), (b, pb)):
        mass = people.with_columns(p=pl.Series(probs)).group_by("field").agg(pl.col("p").sum())
        for field, m in mass.iter_rows():
            label = "field (run)" if run.name == "field" else run.name  # column-name clash
            assert cmp_["field_mass"][field][label] == pytest.approx(m)
    assert 0 <= cmp_["top_overlap"][0]["shared_top20"] <= 20
    assert (tmp_path / "cmp" / "field_mass_runs.png").stat().st_size > 5_000
    assert "## Across runs" in (tmp_path / "cmp" / "report.md").read_text()


def test_report_cli(two_runs, capsys):
    a, b = two_runs
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", str(a), str(b)])
    assert exc.value.code == 2 and "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", str(a), "--json"])
    assert exc.value.code in (0, None)
    assert (a / "report" / "report.md").is_file()
