"""`prefixopt plan`: the McNemar sample size against a hand computation with scipy, the issue's
two examples, Holm, the inverse (detectable MDE), a pilot's discordance, one-line errors for
every bad value, and the `--json` keys and types (through the console-script entry point)."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest
from conftest import run_main
from scipy.stats import norm

from prefixopt import plan


@pytest.fixture
def cli(capsys):
    return lambda *args: run_main(capsys, *args)


def hand(mde: float, d: float, power: float, alpha: float) -> int:
    """Connor (1987), written out independently of prefixopt.plan."""
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    return math.ceil((za * d**0.5 + zb * (d - mde * mde) ** 0.5) ** 2 / (mde * mde))


@pytest.mark.parametrize("mde,d,power,alpha", [
    (0.03, 0.15, 0.8, 0.05), (0.05, 0.2, 0.9, 0.01), (0.01, 0.15, 0.8, 0.05),
    (0.1, 0.3, 0.5, 0.1), (0.02, 0.05, 0.95, 0.05 / 12),
])
def test_formula_matches_hand_computation(mde, d, power, alpha):
    assert plan.mcnemar_questions(mde, d, power, alpha) == hand(mde, d, power, alpha)


def test_formula_known_value():
    # 1.959964 * sqrt(.15) + 0.841621 * sqrt(.1491) = 1.084080; squared / 0.0009 = 1305.8
    assert plan.mcnemar_questions_float(0.03, 0.15, 0.8, 0.05) == pytest.approx(1305.8, abs=0.1)


def test_issue_example_about_1300(cli):
    res = cli("plan", "--mde", "0.03", "--discordance", "0.15", "--power", "0.8",
              "--alpha", "0.05", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert 1250 <= out["questions_needed"] <= 1350
    assert out["questions_needed"] == hand(0.03, 0.15, 0.8, 0.05)
    assert out["available_questions"] == 2376 and out["feasible"] is True


def test_issue_example_mde_001_not_feasible(cli):
    res = cli("plan", "--mde", "0.01", "--benchmark", "arc_easy", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["eval_split"] == "test" and out["available_questions"] == 2376
    assert out["feasible"] is False and out["questions_needed"] > 2376
    assert "not feasible" in res.stderr
    text = cli("plan", "--mde", "0.01")
    assert "feasible: NO" in text.stdout and "not feasible" in text.stderr


def test_holm_comparisons_increase_n(cli):
    ns = [json.loads(cli("plan", "--comparisons", str(c), "--json").stdout)["questions_needed"]
          for c in (1, 2, 12)]
    assert ns[0] < ns[1] < ns[2]
    assert ns[2] == hand(0.03, 0.15, 0.8, 0.05 / 12)


def test_detectable_mde_inverts_the_formula():
    n = plan.mcnemar_questions(0.03, 0.15)
    assert plan.detectable_mde(n, 0.15) == pytest.approx(0.03, abs=1e-4)
    assert plan.detectable_mde(2376, 0.15) > 0.01
    assert plan.detectable_mde(5, 0.15) is None  # too few for any difference up to 0.15


def test_estimate_and_warnings(cli):
    out = json.loads(cli("plan", "--budget", "30000", "--evals-per-s", "5",
                         "--eval-questions", "500", "--eval-prefixes", "13", "--json").stdout)
    assert out["estimated_s"] == pytest.approx(plan.ENGINE_START_S + 30000 / 5 + 500 * 13 / 5)
    assert out["estimated_train_s"] == pytest.approx(6000.0)
    warnings = out["warnings"]
    assert any("cannot detect --mde 0.03" in w for w in warnings)
    assert any("below the ~50,000" in w for w in warnings)
    quiet = json.loads(cli("plan", "--budget", "60000", "--evals-per-s", "5", "--json").stdout)
    assert quiet["warnings"] == [] and quiet["estimated_train_s"] == pytest.approx(12000.0)


def test_json_keys_and_types(cli):
    out = json.loads(cli("plan", "--json").stdout)
    assert isinstance(out["questions_needed"], int)
    assert isinstance(out["available_questions"], int)
    assert isinstance(out["feasible"], bool)
    assert isinstance(out["estimated_s"], float)
    for key, value in (("mde", 0.03), ("discordance", 0.15), ("power", 0.8), ("alpha", 0.05),
                       ("comparisons", 1), ("benchmark", "arc_easy"), ("eval_split", "test")):
        assert out[key] == value
    assert out["discordance_source"] == "default"


def test_hub_only_split_is_unknown(cli, tmp_path):
    (tmp_path / "arc_easy").mkdir()
    (tmp_path / "arc_easy" / "train.jsonl").write_text("{}\n")
    out = json.loads(cli("plan", "--data-dir", str(tmp_path), "--json").stdout)
    assert out["available_questions"] is None and out["feasible"] is None
    assert "unknown" in cli("plan", "--data-dir", str(tmp_path)).stdout


def test_sliced_split_counts_the_slice(cli):
    out = json.loads(cli("plan", "--eval-split", "test[:1000]", "--json").stdout)
    assert out["available_questions"] == 1000 and out["feasible"] is False


@pytest.mark.parametrize("args,flag", [
    (("--mde", "0"), "--mde"), (("--mde", "1"), "--mde"), (("--mde", "-0.1"), "--mde"),
    (("--discordance", "0.02"), "--discordance"), (("--discordance", "0.03"), "--discordance"),
    (("--discordance", "1.2"), "--discordance"), (("--power", "1"), "--power"),
    (("--power", "0"), "--power"), (("--alpha", "0"), "--alpha"), (("--alpha", "1"), "--alpha"),
    (("--benchmark", "nope"), "--benchmark"), (("--comparisons", "0"), "--comparisons"),
    (("--eval-split", "bogus"), "--eval-split"), (("--evals-per-s", "0"), "--evals-per-s"),
    (("--budget", "-5"), "--budget"), (("--eval-questions", "0"), "--eval-questions"),
])
def test_bad_values_are_one_line_errors(cli, args, flag):
    res = cli("plan", *args)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and lines[0].startswith("error:")
    assert res.stdout == ""


def _pilot_table(tmp_path, none: list[bool], learned: list[list[bool]]):
    rows = []
    for index, (kind, correct) in enumerate([("none", none)] + [("learned", c) for c in learned]):
        rows += [{"prefix_index": index, "prefix_kind": kind, "prefix": f"p{index}",
                  "person_id": index, "question_id": q, "correct": c}
                 for q, c in enumerate(correct)]
    (tmp_path / "eval").mkdir()
    pl.DataFrame(rows).write_parquet(tmp_path / "eval" / "test.parquet")
    pl.DataFrame({"x": [1]}).write_parquet(tmp_path / "eval" / "test_summary.parquet")


def test_pilot_discordance(cli, tmp_path):
    none = [True, True, False, False, True, False, True, False, True, True]
    a = [True, False, False, True, True, False, True, False, True, True]  # 2 of 10 differ
    b = [False, False, True, True, True, False, True, False, True, True]  # 4 of 10 differ
    _pilot_table(tmp_path, none, [a, b])
    out = json.loads(cli("plan", "--pilot", str(tmp_path), "--json").stdout)
    assert out["discordance"] == pytest.approx(0.3)
    assert out["discordance_source"].startswith("pilot")
    assert out["questions_needed"] == hand(0.03, 0.3, 0.8, 0.05)


def test_pilot_without_learned_people_fails(cli, tmp_path):
    _pilot_table(tmp_path, [True, False], [])
    res = cli("plan", "--pilot", str(tmp_path))
    assert res.returncode != 0 and "--pilot" in res.stderr


def test_discordance_of():
    assert plan.discordance_of([1, 0, 1, 1], [1, 1, 0, 1]) == 0.5
