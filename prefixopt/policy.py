"""The persona policy: a softmax over N people, pure numpy (no I/O, no globals).

Two parameterisations share one flat parameter vector `params`: `tabular` (one logit per
person) and `factored` (logit = person + field + era terms, so evidence about one physicist
moves every physicist). A contextual policy (n_contexts = C > 0) adds per-context field and era
terms: logit(person | c) = shared terms + U[c, field] + V[c, era]. REINFORCE gradient, advantages
(rloo / mean / ema), Adam or SGD, an optional entropy bonus, field/era steps scaled by how many
members hold the group's mass, and a decoupled logit decay towards uniform (the last two keep
the policy from fixing on one person without evidence: docs/learner_study.md, "REINFORCE
commits"). All state is plain arrays, so a checkpoint is an .npz without pickle.
"""

from __future__ import annotations

import numpy as np

PARAMETERIZATIONS = ("factored", "tabular")
OPTIMIZERS = ("adam", "sgd")
BASELINES = ("rloo", "mean", "ema")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max()
    e = np.exp(z)
    return e / e.sum()


def entropy(probs: np.ndarray) -> float:
    """Entropy in nats; ln(N) for the uniform policy."""
    p = probs[probs > 0]
    return float(-(p * np.log(p)).sum())


class Policy:
    """pi = softmax(logits(params)); logits (N,) are row-aligned with the People table."""

    def __init__(
        self,
        field_index: np.ndarray,  # (N,) int64, index into the field list
        era_index: np.ndarray,  # (N,) int64, index into the era list
        parameterization: str = "factored",
        optimizer: str = "adam",
        learning_rate: float = 0.1,
        entropy_coef: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        n_contexts: int = 0,
        group_min_people: int = 0,
        logit_decay: float = 0.0,
    ) -> None:
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}")
        self.field_index = np.asarray(field_index, dtype=np.int64)
        self.era_index = np.asarray(era_index, dtype=np.int64)
        self.n = len(self.field_index)
        self.n_fields = int(self.field_index.max()) + 1 if self.n else 0
        self.n_eras = int(self.era_index.max()) + 1 if self.n else 0
        self.parameterization = parameterization
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.entropy_coef = entropy_coef
        self.betas, self.eps = betas, eps
        # A field (or era) term moves at full speed only while its probability is spread over
        # >= m members (effective number, inverse Simpson); held by fewer, its step shrinks in
        # proportion (0: off). Without it one lucky person's gradient also raised its field and
        # era terms at full size (its logit rose three times as fast) and dragged its whole
        # field up (docs/learner_study.md, "REINFORCE commits"). Scaling the GRADIENT would not
        # do: Adam divides a coordinate's steady scale away, so the STEP is scaled.
        self.group_min_people = group_min_people
        # Decoupled decay of the logit terms towards 0 (the uniform policy), as AdamW's weight
        # decay: params -= lr * logit_decay * params each step. With no evidence REINFORCE is
        # neutral drift: the logits random-walk, and a person the policy holds is sampled in
        # duplicates that RLOO gives zero advantage, so nothing brings mass back and the policy
        # fixes on whoever drifted up. The decay is that missing restoring force; a term held
        # by steady evidence settles near (Adam's m/sqrt(v)) / logit_decay. An entropy bonus
        # would be the textbook force, but Adam normalises each person's tiny entropy gradient
        # to a full step (entropy_coef 0.01 erased the planted field, docs/learner_study.md).
        self.logit_decay = logit_decay
        size = self.n + (self.n_fields + self.n_eras if parameterization == "factored" else 0)
        # contextual: C x (F + E) more, after the shared terms. Per-context PERSON terms would be
        # C x N parameters that no budget could estimate; a field or era term per context is
        # estimated from every sampled member of that field, so a context learns "scientists
        # for ARC, philosophers for MMLU" from few evaluations and shares person evidence.
        self.n_contexts = n_contexts
        self._shared_size = size
        size += n_contexts * (self.n_fields + self.n_eras)
        self.params = np.zeros(size)  # (P,) all zero: the uniform policy
        self.adam_m = np.zeros(size)  # (P,) Adam first moment
        self.adam_v = np.zeros(size)  # (P,) Adam second moment
        self.step_count = 0

    # --- the distribution -------------------------------------------------------------------
    def _context_terms(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(U (C, F), V (C, E)): the per-context field and era terms inside params."""
        start, c, f = self._shared_size, self.n_contexts, self.n_fields
        return (p[start : start + c * f].reshape(c, f),
                p[start + c * f :].reshape(c, self.n_eras))

    def logits(self, params: np.ndarray | None = None, context: int | None = None) -> np.ndarray:
        """(N,) logits of the shared policy, or of context `context` (contextual policies)."""
        p = self.params if params is None else params
        out = p[: self.n].copy()  # (N,) person terms
        if self.parameterization == "factored":
            out += p[self.n : self.n + self.n_fields][self.field_index]  # field term
            out += p[self.n + self.n_fields : self._shared_size][self.era_index]  # era term
        if context is not None and self.n_contexts:
            u, v = self._context_terms(p)
            out += u[context][self.field_index] + v[context][self.era_index]
        return out

    def probs(self, params: np.ndarray | None = None, context: int | None = None) -> np.ndarray:
        return softmax(self.logits(params, context))  # (N,)

    def sample(self, rng: np.random.Generator, k: int,
               probs: np.ndarray | None = None) -> np.ndarray:
        """K row indices drawn with replacement (the same person may appear twice)."""
        p = self.probs() if probs is None else probs
        if not np.all(np.isfinite(p)):  # searchsorted would clamp NaN to the last person
            raise FloatingPointError("cannot sample from non-finite probabilities")
        # Inverse-CDF sampling: one uniform per draw from the run's Generator.
        cdf = np.cumsum(p)
        idx = np.searchsorted(cdf, rng.random(k) * cdf[-1], side="right")
        return np.minimum(idx, self.n - 1).astype(np.int64)  # (K,)

    # --- gradients ----------------------------------------------------------------------------
    def _chain(self, g_logits: np.ndarray, context: int | None = None) -> np.ndarray:
        """Gradient w.r.t. logits (N,) -> gradient w.r.t. params (P,)."""
        g_field = np.bincount(self.field_index, weights=g_logits, minlength=self.n_fields)  # (F,)
        g_era = np.bincount(self.era_index, weights=g_logits, minlength=self.n_eras)  # (E,)
        parts = [g_logits] + ([g_field, g_era] if self.parameterization == "factored" else [])
        if self.n_contexts:
            g_u = np.zeros((self.n_contexts, self.n_fields))  # (C, F)
            g_v = np.zeros((self.n_contexts, self.n_eras))  # (C, E)
            if context is not None:
                g_u[context], g_v[context] = g_field, g_era
            parts += [g_u.ravel(), g_v.ravel()]
        return np.concatenate(parts)

    def grad_logprob(
        self, actions: np.ndarray, adv: np.ndarray, probs: np.ndarray | None = None,
        context: int | None = None,
    ) -> np.ndarray:
        """d/dparams of sum_i adv_i * log pi(a_i | context).

        d log pi(a) / d logit_j = 1[j = a] - pi_j, so the sum is
        bincount(a, adv) - sum(adv) * pi, chained through the parameterisation.
        """
        p = self.probs(context=context) if probs is None else probs  # (N,)
        g = np.bincount(actions, weights=adv, minlength=self.n) - adv.sum() * p  # (N,)
        return self._chain(g, context)

    def grad_entropy(self, probs: np.ndarray | None = None,
                     context: int | None = None) -> np.ndarray:
        """d/dparams of H(pi) = -sum p log p; dH/dlogit_j = -p_j (log p_j + H)."""
        p = self.probs(context=context) if probs is None else probs
        logp = np.log(np.maximum(p, 1e-300))
        h = -(p * logp).sum()
        return self._chain(-p * (logp + h), context)

    # --- the update ---------------------------------------------------------------------------
    def breadth(self, index: np.ndarray, n_groups: int, p: np.ndarray) -> np.ndarray:
        """(G,) min(1, effective members / m) of each group under p (N,); effective members =
        1 / sum of squared within-group shares (all equal: the group's size; one holds it: 1)."""
        mass = np.bincount(index, weights=p, minlength=n_groups)  # (G,)
        sq = np.bincount(index, weights=p * p, minlength=n_groups)  # (G,)
        members = mass**2 / np.maximum(sq, 1e-300)  # (G,)
        return np.minimum(1.0, members / self.group_min_people)

    def step_scale(self) -> np.ndarray:
        """(P,) the factor on each parameter's step: 1, but breadth() on field and era terms
        (the shared ones under the shared policy, context c's under pi(. | c))."""
        scale = np.ones_like(self.params)  # (P,)
        if not self.group_min_people or self.parameterization != "factored":
            return scale
        n, f, start = self.n, self.n_fields, self._shared_size
        p = self.probs()  # (N,)
        scale[n : n + f] = self.breadth(self.field_index, f, p)
        scale[n + f : start] = self.breadth(self.era_index, self.n_eras, p)
        for c in range(self.n_contexts):
            pc = self.probs(context=c)  # (N,)
            u0 = start + c * f
            v0 = start + self.n_contexts * f + c * self.n_eras
            scale[u0 : u0 + f] = self.breadth(self.field_index, f, pc)
            scale[v0 : v0 + self.n_eras] = self.breadth(self.era_index, self.n_eras, pc)
        return scale

    def update(self, actions: np.ndarray, adv: np.ndarray,
               contexts: np.ndarray | None = None) -> np.ndarray:
        """One ascent step on mean_i adv_i log pi(a_i | c_i) (+ entropy bonus, averaged over the
        contexts present). contexts (K,): each sample's context; None = the shared policy.
        Returns the gradient."""
        if not np.all(np.isfinite(adv)):
            # one NaN/inf advantage turns every probability into NaN, and sample() would then
            # draw the last person forever; train names the answer that broke it before here
            raise FloatingPointError(f"non-finite advantage at samples "
                                     f"{np.flatnonzero(~np.isfinite(adv)).tolist()}: {adv}")
        groups = [(None, np.ones(len(actions), bool))] if contexts is None else [
            (int(c), contexts == c) for c in np.unique(contexts)]
        grad = np.zeros_like(self.params)  # (P,)
        for c, m in groups:
            p = self.probs(context=c)  # (N,)
            grad += self.grad_logprob(actions[m], adv[m], p, c) / max(len(actions), 1)
            if self.entropy_coef:
                grad += self.entropy_coef * self.grad_entropy(p, c) / len(groups)
        self.step_count += 1
        scale = self.step_scale()  # (P,) before the step: the policy the gradient was taken at
        # every term: with person terms alone decaying, field terms drifted up instead over
        # 1,000 iterations (a field at 0.76-0.99 of the mass, nothing planted in it)
        self.params *= 1.0 - self.learning_rate * self.logit_decay
        if self.optimizer == "sgd":
            self.params += scale * self.learning_rate * grad
        else:
            b1, b2 = self.betas
            self.adam_m = b1 * self.adam_m + (1 - b1) * grad
            self.adam_v = b2 * self.adam_v + (1 - b2) * grad * grad
            m_hat = self.adam_m / (1 - b1**self.step_count)
            v_hat = self.adam_v / (1 - b2**self.step_count)
            self.params += scale * self.learning_rate * m_hat / (np.sqrt(v_hat) + self.eps)
        if not np.all(np.isfinite(self.params)):
            raise FloatingPointError("the policy's parameters became non-finite in this step")
        return grad

    # --- state (plain arrays for .npz) --------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return {
            "params": self.params,
            "adam_m": self.adam_m,
            "adam_v": self.adam_v,
            "step_count": np.asarray(self.step_count, dtype=np.int64),
        }

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        if state["params"].shape != self.params.shape:
            raise ValueError(
                f"checkpoint has {state['params'].shape[0]} parameters, policy expects "
                f"{self.params.shape[0]} (different people table or parameterization?)"
            )
        self.params = np.array(state["params"], dtype=float)
        self.adam_m = np.array(state["adam_m"], dtype=float)
        self.adam_v = np.array(state["adam_v"], dtype=float)
        self.step_count = int(state["step_count"])


class Baseline:
    """Reward -> advantage. rloo: r_i - mean of the other K-1; mean: r_i - batch mean;
    ema: r_i - b, b initialised from the first batch mean (or `ema_init`, the seed's 0.0)
    and then b <- decay * b + (1 - decay) * batch mean."""

    def __init__(
        self,
        kind: str = "rloo",
        ema_decay: float = 0.9,
        standardize: bool = False,
        ema_init: float | None = None,
    ) -> None:
        if kind not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}")
        self.kind, self.ema_decay, self.standardize = kind, ema_decay, standardize
        self.value = np.nan if ema_init is None else float(ema_init)  # the EMA (ema only)

    def __call__(self, rewards: np.ndarray) -> tuple[np.ndarray, float]:
        """(advantages (K,), the baseline value reported for this batch)."""
        k = len(rewards)
        mean = float(rewards.mean())
        if self.kind == "rloo":
            # mean of the others = (sum - r_i) / (K - 1); K = 1 has no others -> no signal
            base = (rewards.sum() - rewards) / (k - 1) if k > 1 else rewards.copy()
            adv, reported = rewards - base, mean
        elif self.kind == "mean":
            adv, reported = rewards - mean, mean
        else:
            if np.isnan(self.value):
                self.value = mean
            adv, reported = rewards - self.value, self.value
            self.value = self.ema_decay * self.value + (1 - self.ema_decay) * mean
        if self.standardize:
            adv = adv / (rewards.std() + 1e-8)
        return adv, float(reported)

    def state(self) -> dict[str, np.ndarray]:
        return {"baseline_value": np.asarray(self.value, dtype=float)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.value = float(state["baseline_value"])
