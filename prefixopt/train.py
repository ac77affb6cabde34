"""The REINFORCE loop of DESIGN.md "One iteration", top to bottom in one function: sample K
people, draw ONE batch of B questions that all K answer (common random numbers), score the
K x B grid in ONE engine call, update the numpy policy, write the iteration's Parquet rows
and checkpoint atomically. `resume=True` continues a stopped or killed run exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefixopt import runs
from prefixopt.config import TrainConfig
from prefixopt.engine import Engine
from prefixopt.errors import PrefixoptError
from prefixopt.policy import Baseline, Policy, entropy
from prefixopt.records import Question

Progress = Callable[[dict[str, Any]], None]


@contextlib.contextmanager
def _defer_sigint() -> Iterator[list[bool]]:
    """First Ctrl-C sets a flag (the loop finishes and writes the current iteration, then
    stops); a second one interrupts immediately. No-op outside the main thread."""
    flag = [False]

    def handler(signum, frame):
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def validate(cfg: TrainConfig) -> None:
    """One-line errors for bad values, before anything (data, people, engine) is loaded."""
    from prefixopt.config import BENCHMARKS, PROMPT_FORMATS, SCORINGS
    from prefixopt.policy import BASELINES, OPTIMIZERS, PARAMETERIZATIONS

    def check(ok: bool, message: str) -> None:
        if not ok:
            raise PrefixoptError(message)

    def one_of(flag: str, value: Any, options: Sequence[Any]) -> None:
        check(value in options, f"{flag} {value!r} is not one of: {', '.join(options)}")

    one_of("--benchmark", cfg.task.benchmark, BENCHMARKS)
    if cfg.task.scoring is not None:
        one_of("--scoring", cfg.task.scoring, SCORINGS)
    one_of("--prompt-format", cfg.task.prompt_format, PROMPT_FORMATS)
    one_of("--optimizer", cfg.optimizer, OPTIMIZERS)
    one_of("--baseline", cfg.baseline, BASELINES)
    one_of("--parameterization", cfg.parameterization, PARAMETERIZATIONS)
    one_of("--reward", cfg.reward, ("accuracy", "margin"))
    check(cfg.learning_rate > 0, f"--learning-rate must be > 0 (got {cfg.learning_rate})")
    check(cfg.samples_per_iteration >= 1,
          f"--samples-per-iteration (K) must be >= 1 (got {cfg.samples_per_iteration})")
    check(cfg.baseline != "rloo" or cfg.samples_per_iteration >= 2,
          "--baseline rloo needs --samples-per-iteration >= 2 (or use --baseline ema)")
    check(cfg.batch_size >= 1, f"--batch-size (B) must be >= 1 (got {cfg.batch_size})")
    check(cfg.iterations >= 1, f"--iterations must be >= 1 (got {cfg.iterations})")
    check(cfg.checkpoint_every >= 1, f"--checkpoint-every must be >= 1 (got {cfg.checkpoint_every})")
    check(0 <= cfg.ema_decay < 1, f"--ema-decay must be in [0, 1) (got {cfg.ema_decay})")
    check(cfg.entropy_coef >= 0, f"--entropy-coef must be >= 0 (got {cfg.entropy_coef})")
    check(cfg.task.num_fewshot >= 0, f"--num-fewshot must be >= 0 (got {cfg.task.num_fewshot})")


def check_inputs(cfg: TrainConfig, mode: str, num_questions: int) -> None:
    """What the options need of the data: a margin to reward, B questions to draw."""
    if cfg.reward == "margin" and mode == "generate":
        raise PrefixoptError(f"--reward margin needs letter or cloze scoring; {cfg.task.benchmark} "
                             "is scored by generation here (pass --reward accuracy)")
    if cfg.batch_size > num_questions:
        raise PrefixoptError(f"--batch-size {cfg.batch_size} is larger than the training split "
                             f"({num_questions} questions); lower it")


def questions_fingerprint(questions: Sequence[Question]) -> str:
    return hashlib.sha256("\n".join(q.question_id for q in questions).encode()).hexdigest()


def train(
    cfg: TrainConfig,
    engine: Engine,
    people,  # prefixopt.people.People
    questions: Sequence[Question],
    run_dir: str | Path,
    progress: Progress | None = None,
    resume: bool = False,
    *,
    fewshot: Sequence[Question] = (),
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or continue) a training run in `run_dir`; returns a summary dict. extra_meta goes
    into config.json beside the run's own entries (simulate records its planted scenario);
    a resumed run keeps the entries it was started with."""
    from prefixopt.prompts import build_grid, persona
    from prefixopt.scoring import resolve_scoring, score

    run_dir = Path(run_dir)
    mode = resolve_scoring(cfg.task.benchmark, cfg.task.scoring)
    check_inputs(cfg, mode, len(questions))  # also checked by jobs.prepare_train, pre-engine
    K, B = cfg.samples_per_iteration, cfg.batch_size

    policy = Policy(people.field_index, people.era_index, cfg.parameterization, cfg.optimizer,
                    cfg.learning_rate, cfg.entropy_coef)
    baseline = Baseline(cfg.baseline, cfg.ema_decay, cfg.standardize, cfg.ema_init)
    rng = np.random.default_rng(cfg.seed)  # the ONE generator: people and questions
    start, evaluations = 0, 0
    meta = {
        "kind": "train",
        "versions": {"prefixopt": version("prefixopt"), **engine.info()},
        "people_fingerprint": people.fingerprint,
        "num_people": len(people.person_id),
        "data_fingerprint": questions_fingerprint(questions),
        "num_questions": len(questions),
        "scoring": mode,
        **(extra_meta or {}),
    }
    if resume:
        old = runs.read_config(run_dir)
        meta = {**{k: v for k, v in old.items() if k != "config"}, **meta}
        for key in ("people_fingerprint", "data_fingerprint"):
            if old.get(key) != meta[key]:
                raise PrefixoptError(f"cannot resume {run_dir}: its {key} differs from now")
        if (run_dir / "checkpoints" / "latest.npz").is_file():
            state = runs.load_checkpoint(run_dir)
            policy.load_state(state)
            baseline.load_state(state)
            rng.bit_generator.state = json.loads(str(state["rng_state"]))
            start, evaluations = int(state["iteration"]) + 1, int(state["evaluations"])
        meta["resumed_from"] = start
    runs.truncate_parts(run_dir, start - 1)  # rows of an iteration whose checkpoint was lost
    runs.write_config(run_dir, cfg, meta)

    names, fields, eras = people.names, people.fields, people.eras
    prefix_text = [persona(cfg.task.prefix_template, n) for n in names]  # (N,) once per run
    host_times: list[float] = []
    stopped = False
    with _defer_sigint() as interrupted:
        for it in range(start, cfg.iterations):
            t0 = time.perf_counter()
            # 1. sample K people (rows of the people table) from pi = softmax(logits)
            probs = policy.probs()  # (N,)
            rows = policy.sample(rng, K, probs)  # (K,)
            # 2. one batch of B questions shared by all K (or, seed-style, one per person)
            n_batches = 1 if cfg.common_questions else K
            q_idx = np.stack([rng.choice(len(questions), size=B, replace=False)
                              for _ in range(n_batches)])  # (1 or K, B)
            # 3. the person-major K x B grid of prompts
            pids = people.person_id[rows]  # (K,)
            requests = []
            for b, idx in enumerate(q_idx):
                heads = [(int(pids[k]), prefix_text[rows[k]]) for k in range(K)]
                heads = heads if cfg.common_questions else heads[b : b + 1]
                requests += build_grid(engine, heads, [questions[i] for i in idx],
                                       scoring=mode, prompt_format=cfg.task.prompt_format,
                                       fewshot=fewshot)
            # 4-5. ONE engine call for all K x B prompts, then judge every answer
            t_gen = time.perf_counter()
            responses, answers = score(engine, requests, mode)
            generate_s = time.perf_counter() - t_gen
            # 6. reward per sampled person, advantage, REINFORCE step
            correct = np.fromiter((a.correct for a in answers), bool, K * B).reshape(K, B)
            margin = np.fromiter((a.margin for a in answers), float, K * B).reshape(K, B)
            rewards = (correct if cfg.reward == "accuracy" else margin).mean(axis=1)  # (K,)
            adv, base_value = baseline(rewards)  # (K,)
            policy.update(rows, adv)
            new_probs = policy.probs()  # (N,)
            top = int(new_probs.argmax())
            evaluations += K * B

            # 7. this iteration's rows, then the checkpoint (the commit point), atomically
            qids = [questions[i].question_id for idx in q_idx for i in idx]  # (1 or K)*B
            qids = qids * K if cfg.common_questions else qids  # (K*B,) person-major
            tok = np.array([(r.prompt_tokens, r.cached_tokens, r.output_tokens)
                            for r in responses], dtype=np.int64).reshape(K * B, 3)
            answers_df = pl.DataFrame({
                "iteration": np.full(K * B, it), "sample": np.repeat(np.arange(K), B),
                "person_id": np.repeat(pids, B), "question_id": qids,
                "benchmark": [cfg.task.benchmark] * (K * B),
                "correct": correct.ravel(), "parsed": [a.parsed for a in answers],
                "pred": [a.pred for a in answers], "gold": [a.gold for a in answers],
                "margin": margin.ravel(), "rule": [a.rule for a in answers],
                "prompt_tokens": tok[:, 0], "cached_tokens": tok[:, 1], "output_tokens": tok[:, 2],
                **({"completion": [r.text for r in responses]} if mode == "generate" else {}),
            }, schema_overrides={"pred": pl.String, "gold": pl.String})
            samples_df = pl.DataFrame({
                "iteration": np.full(K, it), "sample": np.arange(K), "person_id": pids,
                "row": rows, "name": [names[r] for r in rows],
                "field": [fields[people.field_index[r]] for r in rows],
                "era": [eras[people.era_index[r]] for r in rows],
                "reward": rewards, "advantage": adv, "prob": probs[rows],
            })
            stats = {
                "iteration": it, "mean_reward": float(rewards.mean()),
                "std_reward": float(rewards.std()), "baseline": base_value,
                "entropy": entropy(new_probs), "top_person_id": int(people.person_id[top]),
                "top_name": names[top], "top_prob": float(new_probs[top]),
                "num_prompts": K * B, "prompt_tokens": int(tok[:, 0].sum()),
                "cached_tokens": int(tok[:, 1].sum()), "output_tokens": int(tok[:, 2].sum()),
                "generate_s": generate_s, "evaluations": evaluations,
            }
            runs.write_part(run_dir, "answers", it, answers_df)
            runs.write_part(run_dir, "samples", it, samples_df)
            stats["wall_s"] = time.perf_counter() - t0
            stats["host_s"] = stats["wall_s"] - generate_s
            runs.write_part(run_dir, "iterations", it, pl.DataFrame([stats]))
            state = {**policy.state(), **baseline.state(), "probs": new_probs,
                     "logits": policy.logits(), "evaluations": evaluations,
                     "rng_state": json.dumps(rng.bit_generator.state)}
            last = it == cfg.iterations - 1
            snapshot = policy.logits() if (it + 1) % cfg.checkpoint_every == 0 or last else None
            runs.save_checkpoint(run_dir, state, iteration=it, snapshot=snapshot)
            host_times.append(time.perf_counter() - t0 - generate_s)

            if progress is not None:
                progress({**stats, "iterations": cfg.iterations, "probs": new_probs,
                          "host_s": host_times[-1]})
            if interrupted[0]:
                stopped = True
                break

    final = policy.probs()
    order = np.argsort(-final)[:10]
    return {
        "run_dir": str(run_dir),
        "iterations_done": int(runs.load_checkpoint(run_dir)["iteration"]) + 1
        if (run_dir / "checkpoints" / "latest.npz").is_file() else 0,
        "interrupted": stopped,
        "evaluations": evaluations,
        "entropy": entropy(final),
        "host_s_mean": float(np.mean(host_times)) if host_times else None,
        "top": [{"person_id": int(people.person_id[r]), "name": names[r],
                 "field": fields[people.field_index[r]], "prob": float(final[r])}
                for r in order],
    }
