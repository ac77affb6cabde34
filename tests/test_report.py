"""`prefixopt report` from synthetic runs: the report's numbers equal a direct polars/numpy
computation over the run's files; figures are non-empty PNGs; several runs compare; the
winner's-curse gap is selection alone (no selection, splits of unequal difficulty: 0); an
evaluation made before that still reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_evaluate import planted_engine, simulate_run

from prefixopt import cli, runs

from prefixopt.evaluate import heldout

from prefixopt.report import page
from prefixopt.engines import synthetic
from prefixopt.people import load_people
from prefixopt.records import NO_PERSON

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    a = simulate_run(tmp, "field")
    b = simulate_run(tmp, "null", "--null", "--seed", "1")
    for run, delta, seed in ((a, 0.2, 0), (b, 0.0, 1)):
        cfg = heldout.config_for_run(run, num_questions=120, bootstrap_samples=500)
        heldout.evaluate(cfg, run, planted_engine(run, delta, seed))
    return a, b


def test_report_numbers_equal_direct_computation(two_runs):
    run, _ = two_runs
    res = page.build_report([run])
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
    direct_holm = {}
    # Holm across every prefix but no prefix; the paraphrase null is a family of its own
    for null in (False, True):
        others = labels.filter((pl.col("prefix_kind") != "none")
                               & ((pl.col("prefix_kind") == "paraphrase") == null))
        pvals = []
        for i in others["prefix_index"]:
            col = wide[str(i)]
            b, c2 = int((col & ~none_col).sum()), int((~col & none_col).sum())
            pvals.append(binomtest(b, b + c2, 0.5).pvalue if b + c2 else 1.0)
        order = np.argsort(pvals, kind="stable")
        m = len(pvals)
        holm = np.maximum.accumulate([min(1.0, (m - r) * pvals[j]) for r, j in enumerate(order)])
        direct_holm |= dict(zip([others["prefix"][int(j)] for j in order], holm, strict=True))
    assert any(x.startswith("paraphrase") for x in direct_holm)  # both families were checked
    for prefix, ph in direct_holm.items():
        assert ev["p_holm"][prefix] == pytest.approx(ph)
    others = labels.filter(pl.col("prefix_kind") != "none")
    learned = others.filter(pl.col("prefix_kind") == "learned")["prefix"]
    assert ev["learned_significant"] == sum(direct_holm[x] < 0.05 for x in learned)
    # the winner's curse: each learned person's accuracy on its training answers minus its
    # held-out accuracy, less the same for no prefix on the same training questions (asked
    # of the engine that trained the run, directly)
    answers = pl.read_parquet(run / "answers" / "*.parquet")
    summary = pl.read_parquet(run / "eval" / "test_n120_seed0_summary.parquet")
    engine, none_acc = planted_engine(run, 0.2, 0), ev["accuracy"]["(none)"]
    for pid, prefix in summary.filter(pl.col("prefix_kind") == "learned").select(
            "person_id", "prefix").iter_rows():
        mine = answers.filter(pl.col("person_id") == pid)
        train_acc = mine["correct"].mean()
        none_train = engine.correct(np.full(len(mine), NO_PERSON), mine["question_id"]).mean()
        raw = train_acc - ev["accuracy"][prefix]
        assert ev["train_minus_heldout"][prefix] == pytest.approx(raw)
        assert ev["curse_gap"][prefix] == pytest.approx(raw - (none_train - none_acc))
    assert ev["winners_curse"]["method"] == "difference_of_differences"
    # the report text carries those numbers and answers the five questions
    text = (run / "report" / "report.md").read_text()
    for q in ("**1.", "**2.", "**3.", "**4.", "**5."):
        assert q in text
    assert f"learned vs random {100 * c['diff']:+.1f} points" in text
    assert "bootstrap over questions and the random people" in text  # the 5 names resampled
    assert "Winner's curse of the learned people (selection alone)" in text
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
    res = page.build_report([a, b], tmp_path / "cmp")
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


def _unequal_splits(tmp: Path, bench_dir: Path, people) -> Path:
    """An arc_easy data dir whose training questions are easier than its held-out ones for
    everyone, no prefix included: 70% vs 30% of them answered right. Difficulty_sd 20 makes
    the synthetic engine's answers (nearly) a function of the question alone, so nobody's
    training score is luck and there is nothing to select on: the winner's curse is 0."""
    engine = synthetic.SyntheticEngine(people, np.full(len(people.person_id), 0.5), 0.5,
                                       20.0, 0)
    raw = [json.loads(line) for split in ("train", "test")
           for line in (bench_dir / "arc_easy" / f"{split}.jsonl").read_text().splitlines()]
    ids = [f"arc_easy/{r['id']}" for r in raw]
    probe = [NO_PERSON, *people.person_id]  # (P,) everyone agrees on a question
    right = np.array([engine.correct(np.full(len(ids), p), ids) for p in probe])  # (P, M)
    easy = [r for r, c in zip(raw, right.T, strict=True) if c.all()]
    hard = [r for r, c in zip(raw, right.T, strict=True) if not c.any()]
    out = tmp / "data"
    (out / "arc_easy").mkdir(parents=True)
    for split, rows in (("train", easy[:140] + hard[:60]), ("test", easy[140:170] + hard[60:130])):
        (out / "arc_easy" / f"{split}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_curse_gap_is_zero_without_selection_when_the_splits_differ(tmp_path, bench_dir):
    people_csv = tmp_path / "people.csv"  # 20 people: every one is sampled in training
    lines = (Path(__file__).resolve().parent.parent / "notable_people_10k.csv").read_text()
    people_csv.write_text("\n".join(lines.splitlines()[:21]) + "\n")
    people = load_people(str(people_csv))
    data = _unequal_splits(tmp_path, bench_dir, people)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        cli.main(["simulate", "--null", "--difficulty-sd", "20", "--data-dir", str(data),
                  "--people", str(people_csv), "--budget", "2560", "--out", str(run)])
    assert exc.value.code in (0, None)
    engine = synthetic.SyntheticEngine(runs.run_people(run), np.full(20, 0.5), 0.5, 20.0, 0)
    cfg = heldout.config_for_run(run, bootstrap_samples=200, num_random=2)
    res = heldout.evaluate(cfg, run, engine)
    learned = res.summary.filter(pl.col("prefix_kind") == "learned")
    # nothing was selected: the curse is about 0 (training reward minus held-out accuracy, the
    # gap as it was, is about 70 - 30 points here)
    assert len(learned) == 5 and learned["curse_gap"].abs().max() < 0.03
    # the raw gap is the splits' difference in difficulty, and no prefix, never selected,
    # shows it too on the same training questions
    assert learned["train_questions"].min() > 0
    assert (learned["train_minus_heldout"] > 0.3).all()
    assert (learned["none_train_minus_heldout"] > 0.3).all()
    text = (Path(page.build_report([run])["report_md"])).read_text()
    assert "Winner's curse of the learned people (selection alone)" in text


def test_report_reads_an_eval_made_before_the_curse_baseline(two_runs, tmp_path):
    """An eval summary of the old schema (curse_gap = training reward - held-out accuracy, no
    no-prefix figures) still reports, its gap shown as raw, with what it includes."""
    import shutil

    run = tmp_path / "old"
    shutil.copytree(two_runs[1], run)
    path = run / "eval" / "test_n120_seed0_summary.parquet"
    s = pl.read_parquet(path)
    old = s.drop("train_questions", "train_accuracy", "none_train_accuracy",
                 "train_minus_heldout", "none_train_minus_heldout", "curse_note").with_columns(
        curse_gap=pl.col("train_reward") - pl.col("accuracy"))
    old.write_parquet(path)
    res = page.build_report([run])
    ev = res["numbers"][run.name]["eval/test_n120_seed0"]
    learned = old.filter(pl.col("prefix_kind") == "learned")
    for prefix, gap in learned.select("prefix", "curse_gap").iter_rows():
        assert ev["train_minus_heldout"][prefix] == pytest.approx(gap)
        assert ev["curse_gap"][prefix] is None
    assert ev["winners_curse"]["method"] == "raw_includes_split_difficulty"
    text = Path(res["report_md"]).read_text()
    assert "not the winner's curse alone" in text and "made before" in text


def test_curse_columns_from_a_hand_made_training_baseline(bench_dir):
    """prefixes.people_columns on hand-made training answers: the difference of differences
    by hand, repeats weighted, a training question shown as a few-shot example left out of both
    sides, no prefix's answers taken off the end of the one call."""
    from prefixopt.evaluate import prefixes
    from prefixopt.benchmarks import load_split
    from prefixopt.records import Answer

    qs = load_split("arc_easy", "train", data_dir=bench_dir)[:3]  # (3,) training questions
    ids = [q.question_id for q in qs]
    # person 7 answered q0 twice (right once), q1 once (right), q2 once (right)
    asked = pl.DataFrame({"person_id": [7, 7, 7], "question_id": ids, "asked": [2, 1, 1],
                          "right": [1, 1, 1]})
    rewards = pl.DataFrame({"person_id": [7], "train_reward": [0.75], "times_sampled": [4]})
    train = prefixes.TrainBaseline(rewards, asked, tuple(qs), {"scoring": "letter",
                                                               "prompt_format": "chat"})
    people = load_people()
    engine = synthetic.SyntheticEngine(people, np.full(len(people.person_id), 0.5), 0.5, 1.0)
    extra, train = prefixes.baseline_requests(train, engine, fewshot=[qs[2]])  # q2 is shown
    assert [r.question.question_id for r in extra] == ids[:2]
    assert all(r.person_id == NO_PERSON for r in extra)
    main = ["m0", "m1"]  # the call's own requests come first
    answers = [Answer(True, True, "A", "A")] * 2 + [Answer(False, True, "B", "A"),
                                                   Answer(True, True, "A", "A")]
    reqs, resps, answers, train = prefixes.take_baseline(train, main + extra, [None] * 4,
                                                         answers)
    assert reqs == main and len(resps) == len(answers) == 2
    assert train.none_correct.rows() == [(ids[0], False), (ids[1], True)]
    row = prefixes.Prefix("learned", "X", 7, "You are X.", 0)
    summary = pl.DataFrame({"prefix_index": [0, 1], "prefix_kind": ["none", "learned"],
                            "person_id": [NO_PERSON, 7], "accuracy": [0.5, 0.6]})
    none = prefixes.Prefix("none", "(none)", NO_PERSON, None)
    out = prefixes.people_columns(summary, [none, row], people, np.full(len(people.names), 0.1),
                                  train).row(1, named=True)
    # q0 (x2) and q1: the person 2/3 right, no prefix (0, 0, 1) 1/3; held out 0.6 vs 0.5
    assert out["train_questions"] == 2 and out["train_accuracy"] == pytest.approx(2 / 3)
    assert out["none_train_accuracy"] == pytest.approx(1 / 3)
    assert out["train_minus_heldout"] == pytest.approx(2 / 3 - 0.6)
    assert out["none_train_minus_heldout"] == pytest.approx(1 / 3 - 0.5)
    assert out["curse_gap"] == pytest.approx((2 / 3 - 0.6) - (1 / 3 - 0.5))
    assert out["curse_note"] is None and out["train_reward"] == 0.75
