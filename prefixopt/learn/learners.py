"""The learners behind one interface (`--learner`): reinforce (train.py, the softmax policy),
halving (halving.py, batched sequential halving) and ttts (ttts.py, top-two Thompson sampling).
`train` dispatches; the bandit loop writes the same run tables and checkpoint as REINFORCE (one
engine call per iteration, common questions), where "probs" is P(best) and "ranking" the
learner's order.
Every summary and config.json say what their `top_confidence` is: `top_confidence_kind`, one of
confidence.KINDS (REINFORCE: "paired" / "unpaired"; halving and ttts: "beta_posterior").
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

from prefixopt.learn import confidence
from prefixopt.config import TrainConfig
from prefixopt.errors import PrefixoptError
from prefixopt.policy import entropy
from prefixopt.records import Question
from prefixopt.learn.iteration import benchmark_names
from prefixopt.learn.loop import train as reinforce
from prefixopt.learn.halving import SequentialHalving
from prefixopt.learn.ttts import TopTwoThompson
from prefixopt.ask.prompts import build_grid, persona, persona_placement
from prefixopt.ask.scoring import resolve_scoring, score
from prefixopt.learn.loop import check_inputs, questions_fingerprint
from prefixopt.interrupts import defer_sigint

LEARNERS = ("reinforce", "halving", "ttts")
REINFORCE_RANKING = "final policy probability"
BANDIT_KIND = "beta_posterior"  # halving's and ttts's top_confidence (confidence.KINDS)


def validate(cfg: TrainConfig) -> None:
    """What the bandit learners need: Bernoulli rewards on one benchmark, shared questions."""
    if cfg.learner not in LEARNERS:
        raise PrefixoptError(f"--learner {cfg.learner!r} is not one of: {', '.join(LEARNERS)}")
    if cfg.learner == "reinforce":
        return

    flag = f"--learner {cfg.learner}"
    if len(benchmark_names(cfg.task.benchmark)) > 1 or cfg.context is not None:
        raise PrefixoptError(f"{flag} learns over one benchmark without --context")
    if cfg.reward != "accuracy":
        raise PrefixoptError(f"{flag} keeps Beta posteriors of accuracy: use --reward accuracy")
    if not cfg.common_questions:
        raise PrefixoptError(f"{flag} asks everyone of a call the same questions: drop "
                             "--fresh-questions")


def train(cfg: TrainConfig, engine, people, questions: Sequence[Question], run_dir: str | Path,
          progress: Callable[[dict[str, Any]], None] | None = None, resume: bool = False, *,
          fewshot: Sequence[Question] = (), extra_meta: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    """Run (or continue) the run with cfg.learner; the summary has `top_confidence` and
    `top_confidence_kind`."""
    validate(cfg)
    if cfg.learner == "reinforce":
        kind = confidence.kind_for(cfg.common_questions)
        meta = {"learner": "reinforce", "ranking": REINFORCE_RANKING,
                **confidence_meta(kind), **(extra_meta or {})}
        # train's summary carries the confidence in its top person (confidence.run_top_confidence
        # over the answers table, paired or not as config.json says; None before any iteration)
        out = reinforce(cfg, engine, people, questions, run_dir, progress, resume,
                        fewshot=fewshot, extra_meta=meta)
        return {**out, "top_confidence_kind": kind}
    return bandit_train(cfg, engine, people, questions, run_dir, progress, resume,
                        fewshot=fewshot, extra_meta=extra_meta)


def confidence_meta(kind: str) -> dict[str, str]:
    """config.json's entries saying what the run's top_confidence is."""
    return {"top_confidence_kind": kind, "top_confidence_meaning": confidence.KINDS[kind]}


def make_learner(cfg: TrainConfig, people, num_questions: int, rng: np.random.Generator):
    """The bandit learner of cfg (its budget: iterations x K x B evaluations)."""
    k, b = cfg.samples_per_iteration, cfg.batch_size
    if cfg.learner == "halving":
        return SequentialHalving(people.field_index, people.era_index, k, b,
                                 cfg.iterations * k * b, num_questions, rng)

    return TopTwoThompson(people.field_index, people.era_index, k, b, cfg.iterations)


def confidence_rng(seed: int, iteration: int) -> np.random.Generator:
    """Apart from the run's generator, so measuring P(best) never changes the run."""
    return np.random.default_rng([seed, 7, iteration])


def bandit_train(cfg: TrainConfig, engine, people, questions: Sequence[Question],
                 run_dir: str | Path, progress=None, resume: bool = False, *,
                 fewshot: Sequence[Question] = (), extra_meta: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The halving / ttts loop: propose who answers which questions, ONE engine call, observe,
    write the iteration's rows and the checkpoint (the commit point) atomically."""

    run_dir = Path(run_dir)
    mode = resolve_scoring(cfg.task.benchmark, cfg.task.scoring)
    check_inputs(cfg, mode, len(questions))
    rng = np.random.default_rng(cfg.seed)  # the ONE generator: pool, people and questions
    learner = make_learner(cfg, people, len(questions), rng)
    meta = {"kind": "train", "versions": {"prefixopt": version("prefixopt"), **engine.info()},
            "people_fingerprint": people.fingerprint, "num_people": len(people.person_id),
            "data_fingerprint": questions_fingerprint(questions),
            "num_questions": len(questions), "scoring": mode, "learner": cfg.learner,
            "ranking": learner.ranking_text, **confidence_meta(BANDIT_KIND),
            "persona_placement": persona_placement(engine) if cfg.task.prompt_format == "chat"
            else "paragraph", **(extra_meta or {})}
    state = start_run(cfg, run_dir, meta, learner, rng, resume)  # {} for a new run
    start = int(state["iteration"]) + 1 if state else 0
    evaluations = int(state["evaluations"]) if state else 0
    prefix_text = [persona(cfg.task.prefix_template, n) for n in people.names]  # (N,)
    probs, conf = restored_probs(state, learner, cfg.seed, len(people.names))
    it, host = start, []

    with defer_sigint() as interrupted:
        while (batch := learner.propose(rng, len(questions))) is not None:
            t0 = time.perf_counter()
            rows, qidx = batch  # (S,) people rows, (T,) question indices: all S answer all T
            heads = [(int(people.person_id[r]), prefix_text[r]) for r in rows]
            asked = [questions[i] for i in qidx]
            requests = build_grid(engine, heads, asked, scoring=mode, fewshot=fewshot,
                                  prompt_format=cfg.task.prompt_format)
            t_gen = time.perf_counter()
            responses, answers = score(engine, requests, mode)  # ONE engine call
            generate_s = time.perf_counter() - t_gen
            correct = np.fromiter((a.correct for a in answers), bool, len(answers))
            grid = correct.reshape(len(rows), len(asked))  # (S, T) person-major
            prob_before = probs[rows]
            learner.observe(rows, qidx, grid, rng)
            evaluations += len(requests)
            last = learner.finished
            ranking = learner.ranking()  # (N,)
            if last or learner.news(it, cfg.checkpoint_every):  # P(best), BANDIT_KIND
                probs = learner.best_probs(confidence_rng(cfg.seed, it))
                conf = float(probs[ranking[0]])  # the top-ranked person's P(best)
            stats = write_iteration(run_dir, it, people, rows, asked, answers, responses, grid,
                                    prob_before, probs, ranking, generate_s, evaluations,
                                    conf, learner.stats())
            state = {**learner.state(), "probs": probs, "ranking": ranking,
                     "top_confidence": np.asarray(conf), "top_confidence_kind": BANDIT_KIND,
                     "evaluations": evaluations, "finished": np.asarray(last),
                     "rng_state": json.dumps(rng.bit_generator.state)}
            snap = (it + 1) % cfg.checkpoint_every == 0 or last
            runs.save_checkpoint(run_dir, state, iteration=it,
                                 snapshot=np.log(np.maximum(probs, 1e-12)) if snap else None)
            host.append(time.perf_counter() - t0 - generate_s)
            if progress is not None:
                progress({**stats, "iterations": cfg.iterations, "probs": probs,
                          "host_s": host[-1]})
            it += 1
            if interrupted[0]:
                break
    return summary(run_dir, people, learner, evaluations, host, bool(interrupted[0]), cfg.seed)


def restored_probs(state: dict[str, np.ndarray], learner, seed: int, n: int
                   ) -> tuple[np.ndarray, float]:
    """(probs (N,), top_confidence) to continue from: the checkpoint's, measured again when it
    predates BANDIT_KIND (its halving probs were a final-round bootstrap, its ttts ones left
    all but 256 people out)."""
    if not state:
        return np.zeros(n), 0.0
    if str(state.get("top_confidence_kind", "")) == BANDIT_KIND:
        return np.asarray(state["probs"], float), float(state["top_confidence"])
    probs = learner.best_probs(confidence_rng(seed, int(state["iteration"])))
    return probs, float(probs[learner.ranking()[0]])


def start_run(cfg: TrainConfig, run_dir: Path, meta: dict[str, Any], learner,
              rng: np.random.Generator, resume: bool) -> dict[str, np.ndarray]:
    """Write config.json; on resume check the fingerprints, restore the learner and the RNG from
    the checkpoint (returned; {} when there is none) and drop rows newer than it."""
    state: dict[str, np.ndarray] = {}
    if resume:
        meta = runs.resumed_meta(run_dir, meta)
        if (run_dir / "checkpoints" / "latest.npz").is_file():
            state = runs.load_checkpoint(run_dir)
            learner.load_state(state)
            rng.bit_generator.state = json.loads(str(state["rng_state"]))
        meta["resumed_from"] = int(state["iteration"]) + 1 if state else 0
    runs.truncate_parts(run_dir, int(state["iteration"]) if state else -1)
    runs.write_config(run_dir, cfg, meta)
    return state


def write_iteration(run_dir: Path, it: int, people, rows: np.ndarray, asked: list[Question],
                    answers, responses, grid: np.ndarray, prob_before: np.ndarray,
                    probs: np.ndarray, ranking: np.ndarray, generate_s: float,
                    evaluations: int, conf: float, extra: dict[str, float]) -> dict[str, Any]:
    """The iteration's answers / samples / iterations rows, in train's schema. reward = the
    person's accuracy on this call's questions; advantage = reward minus the call's mean (the
    paired comparison); prob = P(best) before the call."""
    S, T = grid.shape
    rewards = grid.mean(axis=1)  # (S,)
    pids = people.person_id[rows]  # (S,)
    sample = np.repeat(np.arange(S), T)  # (S*T,)
    tok = np.array([(r.prompt_tokens, r.cached_tokens, r.output_tokens) for r in responses],
                   dtype=np.int64).reshape(-1, 3)
    runs.write_part(run_dir, "answers", it, pl.DataFrame({
        "iteration": np.full(S * T, it), "sample": sample, "person_id": pids[sample],
        "question_id": [q.question_id for q in asked] * S,
        "benchmark": [q.benchmark for q in asked] * S, "correct": grid.reshape(-1),
        "parsed": [a.parsed for a in answers], "pred": [a.pred for a in answers],
        "gold": [a.gold for a in answers], "margin": [a.margin for a in answers],
        "rule": [a.rule for a in answers], "prompt_tokens": tok[:, 0],
        "cached_tokens": tok[:, 1], "output_tokens": tok[:, 2],
    }, schema_overrides={"pred": pl.String, "gold": pl.String, "margin": pl.Float64}))
    runs.write_part(run_dir, "samples", it, pl.DataFrame({
        "iteration": np.full(S, it), "sample": np.arange(S), "person_id": pids, "row": rows,
        "name": [people.names[r] for r in rows],
        "field": [people.fields[people.field_index[r]] for r in rows],
        "era": [people.eras[people.era_index[r]] for r in rows],
        "reward": rewards, "advantage": rewards - rewards.mean(), "prob": prob_before,
    }))
    top = int(ranking[0])
    stats = {"iteration": it, "mean_reward": float(rewards.mean()),
             "std_reward": float(rewards.std()), "baseline": float(rewards.mean()),
             "entropy": entropy(probs) if probs.sum() > 0 else 0.0,
             "top_person_id": int(people.person_id[top]), "top_name": people.names[top],
             "top_prob": float(probs[top]), "top_confidence": conf, "num_prompts": S * T,
             "prompt_tokens": int(tok[:, 0].sum()), "cached_tokens": int(tok[:, 1].sum()),
             "output_tokens": int(tok[:, 2].sum()), "generate_s": generate_s,
             "evaluations": evaluations, **extra}
    runs.write_part(run_dir, "iterations", it, pl.DataFrame([stats]))
    return stats


def summary(run_dir: Path, people, learner, evaluations: int, host: list[float],
            interrupted: bool, seed: int) -> dict[str, Any]:
    """train's summary keys, plus the learner, its ranking and top_confidence (BANDIT_KIND,
    measured again for a checkpoint made before it: restored_probs)."""
    done = (run_dir / "checkpoints" / "latest.npz").is_file()
    ckpt = runs.load_checkpoint(run_dir) if done else {}
    probs, conf = restored_probs(ckpt, learner, seed, len(people.names))
    ranking = learner.ranking()
    return {
        "run_dir": str(run_dir), "learner": learner.name, "ranking": learner.ranking_text,
        "iterations_done": int(ckpt["iteration"]) + 1 if done else 0,
        "interrupted": interrupted, "finished": bool(ckpt.get("finished", False)),
        "evaluations": evaluations,
        "entropy": entropy(probs) if probs.sum() > 0 else 0.0,
        "host_s_mean": float(np.mean(host)) if host else None,
        "top_confidence": conf if done else None, "top_confidence_kind": BANDIT_KIND,
        "top": [{"person_id": int(people.person_id[r]), "name": people.names[r],
                 "field": people.fields[people.field_index[r]], "prob": float(probs[r])}
                for r in ranking[:10]],
    }
