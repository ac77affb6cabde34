"""`prefixopt finding STUDY_DIR` on tiny synthetic studies (two learners, halving and reinforce,
as a grid axis): summary.json has every key with its type, its numbers are the cells' own eval
numbers, Holm is stats.holm over the finding's family, the paragraph follows its rules ("no
evidence" without a planted effect, "helped" where a field is planted), an existing finding is
refused, a bad STUDY_DIR is one error line.
"""

from __future__ import annotations

import csv
import json
import math
import tomllib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import synthetic_study_spec
from prefixopt import cli, runs, stats
from prefixopt.cli import app
from prefixopt.people import DEFAULT_PEOPLE_PATH
from prefixopt.study import finding, finding_budget, finding_md
from prefixopt.study.manifest import read_manifest
from prefixopt.study.spec import load_spec, spec_dict

PLANTED = {"planted_field": "Science", "delta": 0.35, "base_accuracy": 0.45}


@pytest.fixture(autouse=True)
def _data(bench_dir, monkeypatch):
    monkeypatch.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> Path:
    """24 people, 6 of them scientists: a learner finds a planted field in a small budget."""
    with DEFAULT_PEOPLE_PATH.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    keep = ([r for r in rows if r["field"] == "Science"][:6]
            + [r for r in rows if r["field"] != "Science"][:18])
    path = tmp_path_factory.mktemp("people") / "people.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
    return path


def _study(tmp_path: Path, people: Path, name: str, synthetic: dict | None) -> Path:
    spec = synthetic_study_spec(
        tmp_path / f"{name}.toml", name, tmp_path / "studies", budgets=[512], seeds=[0],
        grid={"learner": ["halving", "reinforce"]},
        train={"samples_per_iteration": 8, "batch_size": 16, "people": str(people)},
        eval={"num_questions": 150, "top_k": 3, "num_random": 3, "bootstrap_samples": 300,
              "seed": 0},
        transfer=False, synthetic=synthetic)
    result = CliRunner().invoke(app, ["study", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    return tmp_path / "studies" / name


def _finding(study: Path, out: Path, *extra: str) -> dict:
    result = CliRunner().invoke(app, ["finding", str(study), "--out", str(out), "--json",
                                      *extra])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout[result.stdout.index("{"):])
    return json.loads((Path(got["finding_dir"]) / "summary.json").read_text())


@pytest.fixture(scope="module")
def planted(tmp_path_factory, people, bench_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))
    tmp = tmp_path_factory.mktemp("planted")
    study = _study(tmp, people, "planted", PLANTED)
    yield study, tmp / "findings", _finding(study, tmp / "findings")
    mp.undo()


def _is(x, kind) -> bool:
    return isinstance(x, kind) and not isinstance(x, bool) if kind is not bool else \
        isinstance(x, bool)


def test_summary_has_every_key_with_its_type(planted):
    study, out, s = planted
    for key, kind in (("engine", str), ("model", str), ("benchmark", str), ("command", str),
                      ("primary_learner", str), ("paragraph", str)):
        assert _is(s[key], kind), key
    assert s["engine"] == "synthetic" and s["benchmark"] == "arc_easy"
    assert s["command"].startswith(f"prefixopt study {out}/planted/spec.toml && prefixopt "
                                   f"finding {study}")
    assert [r["learner"] for r in s["runs"]] == ["halving", "reinforce"]
    assert s["primary_learner"] == "halving"  # the first of the spec's grid
    for r in s["runs"]:
        assert _is(r["seed"], int) and _is(r["question_evaluations"], int)
        assert 0 < r["question_evaluations"] <= 512 and _is(r["top_person"], str)
        assert _is(r["top_confidence"], float) and 0 <= r["top_confidence"] <= 1
        assert r["top_confidence_kind"] in ("beta_posterior", "paired")
        assert r["train_dtype"] is None and r["eval_dtype"] is None  # synthetic: no dtype
    ev = s["eval"]
    assert ev["num_questions"] == 150 and _is(ev["no_prefix_accuracy"], float)
    for p in ev["prefixes"]:
        assert {"kind", "label", "learner", "accuracy", "diff_vs_no_prefix", "ci95", "p_value",
                "p_holm", "significant"} <= set(p)
        assert (p["learner"] is not None) == (p["kind"] == "learned")
        assert len(p["ci95"]) == 2 and _is(p["significant"], bool)
    kinds = [p["kind"] for p in ev["prefixes"]]
    assert kinds.count("none") == 1 and kinds.count("random") == 3  # shared rows once
    assert kinds.count("learned") == 6  # 3 per learner
    assert _is(ev["holm"]["alpha"], float) and ev["holm"]["size"] == len(ev["holm"]["family"])
    for key in ("oracle_ceiling", "oracle_ceiling_random", "oracle_ceiling_learned"):
        assert _is(ev[key], float), key
    for key in ("oracle_null", "router", "ensemble"):
        assert isinstance(ev[key], dict), key
    assert set(ev["per_learner"]) == {"halving", "reinforce"}
    assert {"accuracy", "diff_vs_no_prefix", "ci95", "p_value"} <= set(ev["router"])
    b = s["budget"]
    for part in (b, b["train"], b["eval"]):
        assert {"estimated_s", "spent_s", "question_evaluations", "prompt_tokens",
                "computed_tokens", "cached_tokens"} <= set(part)
    assert _is(b["derived"], bool)
    assert b["train"]["question_evaluations"] == sum(r["question_evaluations"] for r in s["runs"])
    pw = s["power"]
    assert pw["num_questions"] == 150 and pw["comparisons"] == ev["holm"]["size"]
    assert pw["mde"] is None or pw["mde_holm"] is None or pw["mde_holm"] > pw["mde"] > 0


def test_numbers_are_the_cells_own_and_holm_is_recomputed(planted):
    study, _, s = planted
    manifest = read_manifest(study)
    ev = s["eval"]
    family_p = []
    for cell, run in zip(manifest["cells"], s["runs"], strict=True):
        summary = runs.scan(study / cell["run_dir"],
                            f"eval/{cell['evals']['arc_easy']}_summary").collect()
        mine = [p for p in ev["prefixes"] if p["learner"] == run["label"]]
        theirs = summary.filter(pl.col("prefix_kind") == "learned").sort("prefix_index")
        assert [p["label"] for p in mine] == theirs["prefix"].to_list()
        for p, t in zip(mine, theirs.iter_rows(named=True), strict=True):
            assert p["accuracy"] == t["accuracy"] and p["diff_vs_no_prefix"] == t["diff_vs_none"]
            assert p["ci95"] == [t["diff_low"], t["diff_high"]]
            assert math.isclose(p["p_value"], t["p_value"])  # McNemar again from the rows
        none = summary.filter(pl.col("prefix_kind") == "none")["accuracy"][0]
        assert ev["no_prefix_accuracy"] == none
    for p in ev["prefixes"]:
        if p["kind"] not in ("none", "paraphrase"):
            family_p.append(p["p_value"])
    holm = stats.holm(np.array(family_p))
    got = [p["p_holm"] for p in ev["prefixes"] if p["kind"] not in ("none", "paraphrase")]
    assert np.allclose(got, holm)
    assert len(family_p) == ev["holm"]["size"]
    # the finding's family is larger than one cell's, so its Holm p is never smaller
    for p in ev["prefixes"]:
        if p["kind"] == "learned":
            assert p["p_holm"] >= p["cell_p_holm"] - 1e-12


def test_planted_paragraph_names_the_effect_and_files_are_small(planted):
    study, out, s = planted
    ev = s["eval"]
    helped = [p for p in ev["prefixes"] if p["kind"] == "learned" and p["significant"]
              and p["diff_vs_no_prefix"] > 0]
    assert helped  # the planted field is found by at least one learner (rule's input)
    best = max(helped, key=lambda p: abs(p["diff_vs_no_prefix"]))
    assert f"accuracy helped by {best['label']}, {100 * best['diff_vs_no_prefix']:+.1f}" in \
        s["paragraph"]
    assert "Unlike Zheng et al. 2024" in s["paragraph"]
    assert f"{100 * s['power']['mde']:.1f} points or more" in s["paragraph"]
    files = sorted(p.name for p in (out / "planted").iterdir())
    assert {"spec.toml", "summary.json", "report.md", "eval.png"} <= set(files)
    assert not any(f.endswith(".parquet") for f in files)
    assert sum(p.stat().st_size for p in (out / "planted").iterdir()) < 1_000_000
    report = (out / "planted" / "report.md").read_text()
    assert s["paragraph"] in report and "![eval](eval.png)" in report
    # spec.toml is what the study ran
    spec = load_spec(out / "planted" / "spec.toml")
    assert spec_dict(spec) == read_manifest(study)["spec"]
    assert tomllib.loads((out / "planted" / "spec.toml").read_text())["grid"]["learner"] == [
        "halving", "reinforce"]


def test_null_study_says_no_evidence(tmp_path, people):
    study = _study(tmp_path, people, "null", None)
    s = _finding(study, tmp_path / "findings")
    learned = [p for p in s["eval"]["prefixes"] if p["kind"] == "learned"]
    assert not any(p["significant"] for p in learned)  # the rule's input: nothing planted
    for label in ("halving", "reinforce"):
        assert f"There is no evidence that the 3 people {label}" in s["paragraph"]
    assert "This agrees with Zheng et al. 2024" in s["paragraph"]
    if s["eval"]["oracle_null"]["identical_to_no_prefix"]:  # the synthetic engine's null
        assert "cannot be told from perturbation" in s["paragraph"]
        assert "oracle gains" not in s["paragraph"]
    router = s["eval"]["router"]
    if not (router["p_value"] < 0.05):
        assert "no evidence that the confidence router over no prefix + halving's" in \
            s["paragraph"]


def test_refuses_to_overwrite_and_bad_study_dir(planted, tmp_path, capsys):
    study, out, s = planted
    before = (out / "planted" / "summary.json").read_text()
    with pytest.raises(SystemExit) as exc:
        cli.main(["finding", str(study), "--out", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("error:") == 1 and "--overwrite" in err
    assert (out / "planted" / "summary.json").read_text() == before
    again = _finding(study, out, "--overwrite")
    assert again["eval"] == s["eval"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp left behind
    half = tmp_path / "half"  # a study whose second cell is still running
    half.mkdir()
    manifest = read_manifest(study)
    manifest["cells"][1]["status"] = "running"
    (half / "manifest.json").write_text(json.dumps(manifest))
    for bad in (tmp_path / "nope", tmp_path, half):
        with pytest.raises(SystemExit) as exc:
            cli.main(["finding", str(bad), "--out", str(tmp_path / "f")])
        err = capsys.readouterr().err
        assert exc.value.code != 0 and err.count("error:") == 1, err
    assert not (tmp_path / "f").exists()


def test_budget_derived_from_the_tables_without_budget_records(planted):
    study, _, s = planted
    manifest, cells = finding.done_cells(study)
    manifest = {k: v for k, v in manifest.items() if k != "budget"}  # a study made before budgets
    b = finding_budget.of_study(study, manifest, finding.eval_tables(study, cells))
    assert b["derived"] is True
    assert b["train"]["question_evaluations"] == sum(r["question_evaluations"]
                                                    for r in s["runs"])
    assert b["train"]["prompt_tokens"] == s["budget"]["train"]["prompt_tokens"]
    assert b["eval"]["question_evaluations"] > 0 and b["eval"]["prompt_tokens"] is None


def _plain_ev(para: tuple[float, float, float], vs: tuple[float, float, float],
              identical: bool = False) -> dict:
    c = lambda d, lo, hi: {"diff": d, "low": lo, "high": hi}  # noqa: E731
    return {"per_learner": {"halving": {"paraphrase_vs_none": c(*para),
                                        "learned_vs_paraphrase": c(*vs)}},
            "oracle_null": {"identical_to_no_prefix": identical},
            "prefixes": [{"kind": "none", "significant": False},
                         {"kind": "paraphrase", "significant": True},
                         {"kind": "paraphrase", "significant": False}]}


def test_plain_prompt_sentence_follows_its_rule():
    # a persona effect must be more than 'any system prompt': the paraphrases vs no prefix,
    # then the primary learner's people vs the paraphrases, each by its interval
    s = finding_md.plain_prompt_sentence(_plain_ev((0.02, 0.005, 0.035), (-0.004, -0.02, 0.01)),
                                         "halving")
    assert s.startswith("A system prompt with no person helped too: the 2 neutral paraphrases, "
                        "+2.0 points together (95% CI [+0.5, +3.5]; 1 of 2 differ")
    assert s.endswith("so the people add nothing measurable to a plain prompt.")
    s = finding_md.plain_prompt_sentence(_plain_ev((-0.03, -0.05, -0.01), (0.05, 0.02, 0.08)),
                                         "halving")
    assert "with no person hurt too" in s and s.endswith("the people add to a plain prompt.")
    s = finding_md.plain_prompt_sentence(_plain_ev((0.01, 0.0, 0.02), (0.0, -0.01, 0.01)),
                                         "halving")
    assert s.startswith("There is no evidence that a system prompt with no person changes")
    s = finding_md.plain_prompt_sentence(_plain_ev((0.02, 0.01, 0.03), (-0.01, -0.02, -0.001)),
                                         "halving")
    assert s.endswith("so the people do worse than a plain prompt.")
    assert finding_md.plain_prompt_sentence(  # the synthetic engine: the null measured nothing
        _plain_ev((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), identical=True), "halving") == ""


def test_paragraph_names_the_dtypes_of_a_real_engine(planted):
    """The numerics open the paragraph for a vLLM study: one dtype, or both when a cell's eval
    ran in another dtype than the training; a synthetic study names none."""
    _, _, s = planted
    assert "synthetic engine)" in finding_md.paragraph(s)
    real = {**s, "engine": "vllm", "runs": [{**r, "train_dtype": "bfloat16",
                                             "eval_dtype": "bfloat16"} for r in s["runs"]]}
    assert "(vllm engine, bfloat16)" in finding_md.paragraph(real)
    real["runs"][1] = {**real["runs"][1], "eval_dtype": "float32"}
    assert "(vllm engine, bfloat16 and float32)" in finding_md.paragraph(real)
