"""The ONE training loop (docs/architecture.md "One training iteration"), for every learner
(learners.Learner: reinforce, halving, ttts): the learner proposes who answers which questions,
the loop builds the person-major prompt grid, scores it in ONE engine call, checks the rewards
are finite, hands them to the learner, writes the iteration's Parquet rows and then the
checkpoint atomically. `resume=True` continues a stopped or killed run exactly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefixopt import runs
from prefixopt.ask.prompts import Shots, build_grid, persona, persona_placement
from prefixopt.ask.scoring import resolve_scoring, score
from prefixopt.config import TrainConfig
from prefixopt.engines import Engine
from prefixopt.errors import PrefixoptError
from prefixopt.interrupts import defer_sigint
from prefixopt.learn import learners
from prefixopt.learn.checks import MARGIN_ON_CHAT, check_inputs, questions_fingerprint
from prefixopt.learn.iteration import QuestionPlan, benchmark_names, check_finite
from prefixopt.learn.tables import answers_frame, iteration_stats, samples_frame, token_counts
from prefixopt.policy import entropy
from prefixopt.records import Question

Progress = Callable[[dict[str, Any]], None]


def train(
    cfg: TrainConfig,
    engine: Engine,
    people,  # prefixopt.people.People
    questions: Sequence[Question],
    run_dir: str | Path,
    progress: Progress | None = None,
    resume: bool = False,
    *,
    fewshot: Shots = (),  # prompts.FewShot (job.prepare_train's), or one fixed block
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or continue) a training run of cfg.learner in `run_dir`; returns a summary dict
    (with `top_confidence` and `top_confidence_kind`). extra_meta goes into config.json beside
    the run's own entries (simulate records its planted scenario); a resumed run keeps the
    entries it was started with."""
    learners.validate(cfg)
    run_dir = Path(run_dir)
    names_b = benchmark_names(cfg.task)  # (M,) the run's benchmarks
    modes = {b: resolve_scoring(b, cfg.task.scoring) for b in names_b}  # scoring per benchmark
    plan = QuestionPlan(questions, names_b, cfg.batch_size, cfg.benchmark_weights, cfg.context)
    for b in names_b:  # also checked by job.prepare_train, before the engine
        check_inputs(cfg, modes[b], len(plan.pools[b]), plan.counts[b], b)
    mode = next(iter(modes.values())) if len(set(modes.values())) == 1 else dict(modes)
    if cfg.reward == "margin" and engine.api == "chat":  # --api auto found one
        raise PrefixoptError(MARGIN_ON_CHAT)
    chat = engine.api == "chat"  # a chat API's missing letters are recorded

    rng = np.random.default_rng(cfg.seed)  # the ONE generator: people and questions
    learner = learners.build(cfg, people, plan, questions, rng)  # halving draws its pool here
    start, evaluations = 0, 0
    meta = {
        "kind": "train",
        "versions": {"prefixopt": version("prefixopt"), **engine.info()},
        "people_fingerprint": people.fingerprint, "num_people": len(people.person_id),
        "data_fingerprint": questions_fingerprint(questions), "num_questions": len(questions),
        "scoring": mode, "learner": learner.name, "ranking": learner.ranking_text,
        **learners.confidence_meta(learner.kind),
        # where the persona went: the system message, or the user turn of a template without
        # a system role; the harness format puts it first in the prompt
        "persona_placement": persona_placement(engine) if cfg.task.prompt_format == "chat"
        else "paragraph",
        **learner.meta(),  # reinforce: its contexts
        **(extra_meta or {}),
    }
    if resume:
        meta = runs.resumed_meta(run_dir, meta)
        if runs.has_checkpoint(run_dir):
            state = runs.load_checkpoint(run_dir)
            learner.load_state(state)
            rng.bit_generator.state = json.loads(str(state["rng_state"]))
            start, evaluations = int(state["iteration"]) + 1, int(state["evaluations"])
        meta["resumed_from"] = start
    runs.truncate_parts(run_dir, start - 1)  # rows of an iteration whose checkpoint was lost
    runs.write_config(run_dir, cfg, meta)

    prefix_text = [persona(cfg.task.prefix_template, n) for n in people.names]  # (N,) once
    host_times: list[float] = []
    it, stopped = start, False
    with defer_sigint() as interrupted:
        while (groups := learner.propose(rng)) is not None:
            t0 = time.perf_counter()
            # 1-2. who answers what: groups of people (K per context for reinforce; S per call
            #      for halving / ttts), each with its questions (shared, or one batch per person)
            # 3. the person-major grid of prompts, group after group
            requests = []
            for g in groups:
                heads = [(int(people.person_id[r]), prefix_text[r]) for r in g.rows]  # (K,)
                per_person = [heads] if cfg.common_questions else [[h] for h in heads]
                for hs, qs in zip(per_person, g.questions, strict=False):
                    requests += build_grid(engine, hs, qs, scoring=mode, fewshot=fewshot,
                                           prompt_format=cfg.task.prompt_format)
            # 4-5. ONE engine call for all K x B prompts (every group, every scoring mode)
            t_gen = time.perf_counter()
            responses, answers = score(engine, requests, mode)
            generate_s = time.perf_counter() - t_gen
            # 6. the reward of every answer, checked finite, to the learner (its update)
            rows = np.concatenate([g.rows for g in groups])  # (S,)
            asked = [q for g in groups for qs in g.questions for q in qs]  # (K*B,) request order
            sample = np.repeat(np.arange(len(rows)),
                               [len(qs) for g in groups for qs in g.questions])  # (K*B,)
            pids = people.person_id[rows]  # (S,)
            correct = np.fromiter((a.correct for a in answers), bool, len(answers))  # (K*B,)
            margin = np.fromiter((a.margin for a in answers), float, len(answers))  # (K*B,)
            value = correct if cfg.reward == "accuracy" else margin
            check_finite(value, pids[sample], asked, cfg.reward)  # before the learner sees them
            rewards, adv, base, sample_cols, extra = learner.observe(groups, value, rng)  # (S,)
            probs, top, conf = learner.report(it)  # (N,) after the update
            evaluations += len(requests)

            # 7. this iteration's rows, then the checkpoint (the commit point), atomically
            tok = token_counts(responses)  # (K*B, 3)
            runs.write_part(run_dir, "answers", it, answers_frame(
                it, sample, pids, asked, answers, responses, modes,
                sample_cols.get("context"), chat, learner.wide_rows))
            runs.write_part(run_dir, "samples", it, samples_frame(
                it, people, rows, rewards, adv, np.concatenate([g.probs[g.rows] for g in groups]),
                sample_cols))
            stats = iteration_stats(it, people, rewards, base, probs, top, conf, tok, generate_s,
                                    evaluations, extra)
            if learner.wide_rows:
                stats["wall_s"] = time.perf_counter() - t0
                stats["host_s"] = stats["wall_s"] - generate_s
            runs.write_part(run_dir, "iterations", it, pl.DataFrame([stats]))
            state = {**learner.state(), "evaluations": evaluations,
                     "rng_state": json.dumps(rng.bit_generator.state)}
            snapshot = (it + 1) % cfg.checkpoint_every == 0 or learner.finished
            runs.save_checkpoint(run_dir, state, iteration=it,
                                 snapshot=learner.snapshot() if snapshot else None)
            host_times.append(time.perf_counter() - t0 - generate_s)

            if progress is not None:
                progress({**stats, "iterations": cfg.iterations, "probs": probs,
                          "host_s": host_times[-1]})
            it += 1
            if interrupted[0]:
                stopped = True
                break

    ckpt = runs.load_checkpoint(run_dir) if runs.has_checkpoint(run_dir) else {}
    final, order, conf, extra = learner.summary(run_dir, ckpt)  # (N,), best rows first
    return {
        "run_dir": str(run_dir), "iterations_done": int(ckpt["iteration"]) + 1 if ckpt else 0,
        "top_confidence": conf, "top_confidence_kind": learner.kind,
        "interrupted": stopped, "evaluations": evaluations,
        "entropy": entropy(final) if final.sum() > 0 else 0.0,
        "host_s_mean": float(np.mean(host_times)) if host_times else None,
        "top": [{"person_id": int(people.person_id[r]), "name": people.names[r],
                 "field": people.fields[people.field_index[r]], "prob": float(final[r])}
                for r in order],
        **extra,
    }
