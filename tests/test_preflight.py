"""Every check that can be judged from the options alone fails before an engine is built, in
train, eval, run and bench: one `error:` line on stderr, exit status 2, and the engine builder
never called (it is replaced by a recorder that would fail the test if reached)."""

from __future__ import annotations

import json

import pytest

from prefixopt import runs
from prefixopt.cli import main
from prefixopt.errors import PrefixoptError

ARC_TRAIN = ("--train-split", "train[:40]")


@pytest.fixture
def built(monkeypatch):
    """Replace the vLLM engine builder with a recorder; a call means a check came too late."""
    calls: list[object] = []

    def recorder(cfg, *args, **kwargs):
        calls.append(cfg)
        raise AssertionError("the engine was built before the bad input was refused")

    monkeypatch.setattr("prefixopt.engines.vllm_engine.build_engine", recorder)
    return calls


@pytest.fixture
def cli(capsys, built, bench_dir, tmp_path, monkeypatch):
    """Run `prefixopt ARGS` in-process; returns (exit code, stderr)."""
    monkeypatch.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        try:
            main(list(args))  # the data dir comes from PREFIXOPT_DATA_DIR, as a user's would
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return code, capsys.readouterr().err

    return run


def _refused(result: tuple[int, str], built: list, *words: str) -> None:
    code, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert not built, "engine builder was called"
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])


TRAIN_CASES = {
    "benchmark x scoring": (["--benchmark", "gsm8k", "--scoring", "letter"], ["gsm8k"]),
    "unknown benchmark": (["--benchmark", "mmlu-pro"], ["--benchmark"]),
    "template placeholder": (["--prefix-template", "You are {nam}."], ["{name}"]),
    "people file": (["--people", "no-such-people.csv"], ["no-such-people.csv"]),
    "batch vs split": (["--train-split", "train[:5]", "-b", "8"], ["--batch-size"]),
    "unknown split": (["--train-split", "nosuchsplit"], ["nosuchsplit"]),
    "few-shot needs": (["--num-fewshot", "100000"], ["--num-fewshot"]),
    "margin vs generate": (["--benchmark", "gsm8k", "--reward", "margin"], ["margin"]),
    "model path": (["--model", "/no/such/model-dir"], ["/no/such/model-dir"]),
    "dtype": (["--dtype", "float8"], ["--dtype"]),
    "learner option": (["--optimizer", "lion"], ["--optimizer"]),
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train_refuses_before_the_engine(cli, built, case):
    args, words = TRAIN_CASES[case]
    _refused(cli("train", *ARC_TRAIN, *args), built, *words)


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_run_refuses_before_the_engine(cli, built, case):
    args, words = TRAIN_CASES[case]
    _refused(cli("run", *ARC_TRAIN, *args), built, *words)


def test_train_output_dir_collision_before_the_engine(cli, built, tmp_path):
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    _refused(cli("train", *ARC_TRAIN, "--output-dir", str(tmp_path / "runs"),
                 "--run-name", "taken"), built, "already exists")


def test_resume_of_a_non_run_before_the_engine(cli, built, tmp_path):
    (tmp_path / "empty").mkdir()
    _refused(cli("train", "--resume", str(tmp_path / "empty")), built, "not a run directory")


def test_resume_in_another_dtype_before_the_engine(cli, built, tmp_path):
    """A run trained in one dtype is not continued in another (--dtype auto resolves per CPU):
    a run made here, then recorded as a vLLM run trained in float16, which --dtype auto never
    resolves to on a CPU, with two iterations to go."""
    code, err = cli("train", *ARC_TRAIN, "--engine", "synthetic", "--iterations", "2", "-k", "4",
                    "-b", "4", "--output-dir", str(tmp_path / "runs"), "--run-name", "r")
    assert code == 0, err
    run = tmp_path / "runs" / "r"
    meta = json.loads((run / "config.json").read_text())
    meta["config"]["engine"]["kind"] = "vllm"
    meta["versions"]["dtype"] = "float16"
    (run / "config.json").write_text(json.dumps(meta))
    _refused(cli("train", "--resume", str(run), "--iterations", "4"), built,
             "cannot resume", "trained in float16", "mix two dtypes")


def test_resume_dtype_check_passes_the_same_dtype_and_runs_without_one(tmp_path):
    for name, versions in (("same", {"dtype": "float32"}), ("none", {})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"versions": versions}))
    runs.check_resume_dtype([tmp_path / "same", tmp_path / "none"], "float32",
                            "float32 (why)")
    with pytest.raises(PrefixoptError, match="trained in float32 and this job resolves to "
                       "bfloat16"):
        runs.check_resume_dtype([tmp_path / "same"], "bfloat16", "bfloat16 (why)")


RUN_EVAL_CASES = {
    "held-out split overlaps the training split":
        (["--train-split", "test[:60]", "--eval-split", "test[:100]"], ["--eval-split"]),
    "eval questions beyond the split": (["--eval-split", "test[:10]", "--eval-num-questions",
                                         "50"], ["--num-questions"]),
    "unknown named person": (["--eval-people", "Albert Einstien"], ["Albert Einstien"]),
    "unknown eval split": (["--eval-split", "nosuchsplit"], ["nosuchsplit"]),
}


@pytest.mark.parametrize("case", sorted(RUN_EVAL_CASES))
def test_run_checks_its_eval_before_the_engine(cli, built, case):
    args, words = RUN_EVAL_CASES[case]
    base = [] if "--train-split" in args else list(ARC_TRAIN)
    _refused(cli("run", *base, *args), built, *words)


EVAL_CASES = {
    "benchmark x scoring": (["--benchmark", "gsm8k", "--scoring", "cloze", "--only-baseline"],
                            ["gsm8k"]),
    "num questions": (["--benchmark", "arc_easy", "--eval-split", "test[:10]",
                       "--num-questions", "11", "--only-baseline"], ["--num-questions"]),
    "template-free prompt format": (["--benchmark", "arc_easy", "--prompt-format", "xml",
                                     "--only-baseline"], ["--prompt-format"]),
    "unknown person": (["--benchmark", "arc_easy", "--people", "Albert Einstien"],
                       ["Albert Einstien"]),
    "model path": (["--benchmark", "arc_easy", "--only-baseline", "--model", "/no/such/model"],
                   ["/no/such/model"]),
    "few-shot needs": (["--benchmark", "arc_easy", "--only-baseline", "--num-fewshot", "100000"],
                       ["--num-fewshot"]),
}


@pytest.mark.parametrize("case", sorted(EVAL_CASES))
def test_eval_refuses_before_the_engine(cli, built, case):
    args, words = EVAL_CASES[case]
    _refused(cli("eval", *args), built, *words)


BENCH_CASES = {
    "benchmark x scoring": (["--benchmark", "gsm8k", "--scoring", "letter"], ["gsm8k"]),
    "model path": (["--model", "/no/such/model"], ["/no/such/model"]),
    "few-shot needs": (["--num-fewshot", "100000"], ["--num-fewshot"]),
}


@pytest.mark.parametrize("case", sorted(BENCH_CASES))
def test_bench_refuses_before_the_engine(cli, built, case):
    args, words = BENCH_CASES[case]
    _refused(cli("bench", *args), built, *words)
