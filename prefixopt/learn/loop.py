"""The REINFORCE loop of DESIGN.md "One iteration", top to bottom in one function: sample K
people, draw ONE batch of B questions that all K answer (common random numbers), score the
K x B grid in ONE engine call, update the numpy policy, write the iteration's Parquet rows
and checkpoint atomically. `resume=True` continues a stopped or killed run exactly.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefixopt import runs
from prefixopt.config import TrainConfig
from prefixopt.engines import Engine
from prefixopt.errors import PrefixoptError
from prefixopt.interrupts import defer_sigint
from prefixopt.policy import Baseline, Policy, entropy
from prefixopt.ask.prompts import Shots
from prefixopt.records import Question
from prefixopt.benchmarks import BENCHMARKS
from prefixopt.config import PROMPT_FORMATS, SCORINGS
from prefixopt.learn.iteration import CONTEXTS, benchmark_names
from prefixopt.policy import BASELINES, OPTIMIZERS, PARAMETERIZATIONS
from prefixopt.learn.confidence import run_top_confidence
from prefixopt.learn.iteration import QuestionPlan, advantages, check_finite
from prefixopt.ask.prompts import build_grid, persona, persona_placement
from prefixopt.ask.scoring import resolve_scoring, score

Progress = Callable[[dict[str, Any]], None]
# a chat API lists only its top log-probs: a letter outside them has no log-prob, so no margin
MARGIN_ON_CHAT = ("--reward margin needs every choice's log-prob, which a chat API does not "
                  "return (a letter outside its top list has none); use --reward accuracy, or a "
                  "completions endpoint (--api completions)")


def validate(cfg: TrainConfig) -> None:
    """One-line errors for bad values, before anything (data, people, engine) is loaded."""

    def check(ok: bool, message: str) -> None:
        if not ok:
            raise PrefixoptError(message)

    def one_of(flag: str, value: Any, options: Sequence[Any]) -> None:
        check(value in options, f"{flag} {value!r} is not one of: {', '.join(options)}")

    names = benchmark_names(cfg.task.benchmark)
    for name in names:
        one_of("--benchmark", name, BENCHMARKS)
    several = len(names) > 1 or cfg.context is not None
    if cfg.context is not None:
        one_of("--context", cfg.context, CONTEXTS)
    check(not cfg.benchmark_weights or len(cfg.benchmark_weights) == len(names),
          f"--benchmark-weights has {len(cfg.benchmark_weights)} values for {len(names)} "
          "benchmarks; give one per benchmark")
    check(all(w > 0 for w in cfg.benchmark_weights), "--benchmark-weights must be > 0")
    check(not several or cfg.baseline != "ema",
          "--baseline ema keeps one running value; with several benchmarks or a --context use "
          "rloo or mean")
    check(not several or cfg.common_questions,
          "--fresh-questions works with one benchmark and no --context")
    check(not several or cfg.task.num_fewshot == 0 or len(names) == 1,
          "--num-fewshot works with one benchmark at a time")
    if cfg.task.scoring is not None:
        one_of("--scoring", cfg.task.scoring, SCORINGS)
    one_of("--prompt-format", cfg.task.prompt_format, PROMPT_FORMATS)
    one_of("--optimizer", cfg.optimizer, OPTIMIZERS)
    one_of("--baseline", cfg.baseline, BASELINES)
    one_of("--parameterization", cfg.parameterization, PARAMETERIZATIONS)
    one_of("--reward", cfg.reward, ("accuracy", "margin"))
    check(cfg.reward != "margin" or not (cfg.engine.kind == "openai" and cfg.engine.api == "chat"),
          MARGIN_ON_CHAT)
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
    check(cfg.group_min_people >= 0 and cfg.logit_decay >= 0,
          "--group-min-people and --logit-decay must be >= 0")
    check(cfg.task.num_fewshot >= 0, f"--num-fewshot must be >= 0 (got {cfg.task.num_fewshot})")


def check_inputs(cfg: TrainConfig, mode: str, num_questions: int,
                 batch: int | None = None, benchmark: str | None = None) -> None:
    """What the options need of one benchmark's data: a margin to reward, its share of the B
    questions (all of B for a single benchmark) to draw."""
    benchmark = benchmark or cfg.task.benchmark
    if cfg.reward == "margin" and mode == "generate":
        raise PrefixoptError(f"--reward margin needs letter or cloze scoring; {benchmark} "
                             "is scored by generation here (pass --reward accuracy)")
    batch = cfg.batch_size if batch is None else batch
    if batch > num_questions:
        share = "" if batch == cfg.batch_size else f" (its {batch} {benchmark} questions)"
        raise PrefixoptError(f"--batch-size {cfg.batch_size}{share} is larger than the training "
                             f"split ({num_questions} {benchmark} questions); lower it")


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
    fewshot: Shots = (),  # prompts.FewShot (jobs.prepare_train's), or one fixed block
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or continue) a training run in `run_dir`; returns a summary dict. extra_meta goes
    into config.json beside the run's own entries (simulate records its planted scenario);
    a resumed run keeps the entries it was started with."""

    run_dir = Path(run_dir)
    names_b = benchmark_names(cfg.task.benchmark)  # (M,) the run's benchmarks
    modes = {b: resolve_scoring(b, cfg.task.scoring) for b in names_b}  # scoring per benchmark
    plan = QuestionPlan(questions, names_b, cfg.batch_size, cfg.benchmark_weights, cfg.context)
    for b in names_b:  # also checked by jobs.prepare_train, before the engine
        check_inputs(cfg, modes[b], len(plan.pools[b]), plan.counts[b], b)
    mode = next(iter(modes.values())) if len(set(modes.values())) == 1 else dict(modes)
    if cfg.reward == "margin" and getattr(engine, "api", None) == "chat":  # --api auto found one
        raise PrefixoptError(MARGIN_ON_CHAT)
    K = cfg.samples_per_iteration

    policy = Policy(people.field_index, people.era_index, cfg.parameterization, cfg.optimizer,
                    cfg.learning_rate, cfg.entropy_coef, n_contexts=len(plan.context_names),
                    group_min_people=cfg.group_min_people, logit_decay=cfg.logit_decay)
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
        # where the persona went: the system message, or the user turn of a template without
        # a system role; the harness format puts it first in the prompt
        "persona_placement": persona_placement(engine) if cfg.task.prompt_format == "chat"
        else "paragraph",
        **({"contexts": list(plan.context_names)} if plan.context else {}),
        **(extra_meta or {}),
    }
    if resume:
        meta = runs.resumed_meta(run_dir, meta)
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
    with defer_sigint() as interrupted:
        for it in range(start, cfg.iterations):
            t0 = time.perf_counter()
            # 1-2. who answers what: K people from pi (per context present, when contextual)
            #      and ONE batch of B questions they all answer (seed-style: one per person)
            groups = plan.groups(policy, rng, K, cfg.common_questions)
            # 3. the person-major grid of prompts, group after group
            requests = []
            for g in groups:
                pids = people.person_id[g.rows]  # (K,)
                heads = [(int(pids[k]), prefix_text[g.rows[k]]) for k in range(K)]
                per_person = [heads] if cfg.common_questions else [[h] for h in heads]
                for hs, qs in zip(per_person, g.questions):
                    requests += build_grid(engine, hs, qs, scoring=mode, fewshot=fewshot,
                                           prompt_format=cfg.task.prompt_format)
            # 4-5. ONE engine call for all K x B prompts (every group, every scoring mode)
            t_gen = time.perf_counter()
            responses, answers = score(engine, requests, mode)
            generate_s = time.perf_counter() - t_gen
            # 6. reward per sampled person, advantage within each benchmark, REINFORCE step
            correct = np.fromiter((a.correct for a in answers), bool, len(answers))  # (K*B,)
            margin = np.fromiter((a.margin for a in answers), float, len(answers))  # (K*B,)
            value = correct if cfg.reward == "accuracy" else margin
            S = K * len(groups)  # samples this iteration: K per group
            rows = np.concatenate([g.rows for g in groups])  # (S,)
            asked = [q for g in groups for qs in g.questions for q in qs]  # (K*B,) request order
            sample = np.repeat(np.arange(S), [len(qs) for g in groups for qs in g.questions])
            pids = people.person_id[rows]  # (S,)
            check_finite(value, pids[sample], asked, cfg.reward)  # before the policy sees them
            rewards, adv = np.zeros(S), np.zeros(S)  # (S,)
            per_bench = {b: np.full(S, np.nan) for b in names_b}  # (S,) per benchmark
            base_values, at = [], 0
            for i, g in enumerate(groups):
                n = len(g.questions[0])  # questions per person in this group
                part = slice(i * K, (i + 1) * K)
                rewards[part], per, adv[part], v = advantages(
                    value[at:at + K * n].reshape(K, n), [q.benchmark for q in g.questions[0]],
                    baseline)
                for b, rb in per.items():
                    per_bench[b][part] = rb
                base_values.append(v)
                at += K * n
            contexts = np.repeat([-1 if g.context is None else g.context for g in groups], K)
            policy.update(rows, adv, contexts=contexts if plan.context else None)
            new_probs = policy.probs()  # (N,) the shared policy
            top = int(new_probs.argmax())
            evaluations += len(requests)

            # 7. this iteration's rows, then the checkpoint (the commit point), atomically
            ctx_names = np.repeat([plan.context_name(g) or "" for g in groups], K)  # (S,)
            tok = np.array([(r.prompt_tokens, r.cached_tokens, r.output_tokens)
                            for r in responses], dtype=np.int64).reshape(-1, 3)
            generated = "generate" in modes.values()
            answers_df = pl.DataFrame({
                "iteration": np.full(len(answers), it), "sample": sample,
                "person_id": pids[sample], "question_id": [q.question_id for q in asked],
                "benchmark": [q.benchmark for q in asked],
                "correct": correct, "parsed": [a.parsed for a in answers],
                "pred": [a.pred for a in answers], "gold": [a.gold for a in answers],
                "margin": margin, "rule": [a.rule for a in answers],
                "prompt_tokens": tok[:, 0], "cached_tokens": tok[:, 1], "output_tokens": tok[:, 2],
                **({"completion": [r.text if modes[q.benchmark] == "generate" else None
                                   for q, r in zip(asked, responses)]} if generated else {}),
                **({"context": ctx_names[sample]} if plan.context else {}),
                # a chat API's letters missing from its top list (scored -inf)
                **({"missing_letters": [r.missing_letters for r in responses]}
                   if getattr(engine, "api", None) == "chat" else {}),
            }, schema_overrides={"pred": pl.String, "gold": pl.String, "completion": pl.String})
            samples_df = pl.DataFrame({
                "iteration": np.full(S, it), "sample": np.arange(S), "person_id": pids,
                "row": rows, "name": [names[r] for r in rows],
                "field": [fields[people.field_index[r]] for r in rows],
                "era": [eras[people.era_index[r]] for r in rows],
                "reward": rewards, "advantage": adv,
                "prob": np.concatenate([g.probs[g.rows] for g in groups]),
                **({"context": ctx_names} if plan.context else {}),
                **({f"reward_{b}": col for b, col in per_bench.items()} if len(names_b) > 1
                   else {}),
            })
            stats = {
                "iteration": it, "mean_reward": float(rewards.mean()),
                "std_reward": float(rewards.std()), "baseline": float(np.mean(base_values)),
                "entropy": entropy(new_probs), "top_person_id": int(people.person_id[top]),
                "top_name": names[top], "top_prob": float(new_probs[top]),
                "num_prompts": len(requests), "prompt_tokens": int(tok[:, 0].sum()),
                "cached_tokens": int(tok[:, 1].sum()), "output_tokens": int(tok[:, 2].sum()),
                "generate_s": generate_s, "evaluations": evaluations,
                **({f"reward_{b}": float(np.nanmean(col)) for b, col in per_bench.items()}
                   if len(names_b) > 1 else {}),
            }
            runs.write_part(run_dir, "answers", it, answers_df)
            runs.write_part(run_dir, "samples", it, samples_df)
            stats["wall_s"] = time.perf_counter() - t0
            stats["host_s"] = stats["wall_s"] - generate_s
            runs.write_part(run_dir, "iterations", it, pl.DataFrame([stats]))
            state = {**policy.state(), **baseline.state(), "probs": new_probs,
                     "logits": policy.logits(), "evaluations": evaluations,
                     "rng_state": json.dumps(rng.bit_generator.state),
                     **({"context_probs": np.stack([policy.probs(context=c) for c in range(
                         len(plan.context_names))])} if plan.context else {})}  # (C, N)
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
    done = int(runs.load_checkpoint(run_dir)["iteration"]) + 1 \
        if (run_dir / "checkpoints" / "latest.npz").is_file() else 0
    return {
        "run_dir": str(run_dir), "iterations_done": done,
        # P(the top person is the best of those tried), from the answers table
        "top_confidence": run_top_confidence(run_dir, int(people.person_id[order[0]]), cfg.seed)
        if done else None,
        "interrupted": stopped, "evaluations": evaluations, "entropy": entropy(final),
        "host_s_mean": float(np.mean(host_times)) if host_times else None,
        "top": [{"person_id": int(people.person_id[r]), "name": names[r],
                 "field": fields[people.field_index[r]], "prob": float(final[r])}
                for r in order],
    }
