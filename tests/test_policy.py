"""policy.py: gradients against finite differences, normalisation, update direction,
advantages and optimiser behaviour. Pure numpy, milliseconds."""

from __future__ import annotations

import numpy as np
import pytest

from prefixopt.policy import Baseline, Policy, entropy, softmax

FIELD = np.array([0, 0, 1, 1, 2, 2, 2])  # (N,) 7 people, 3 fields
ERA = np.array([0, 1, 0, 1, 0, 1, 1])  # (N,) 2 eras


def make(param: str, **kw) -> Policy:
    pol = Policy(FIELD, ERA, param, **kw)
    pol.params = np.random.default_rng(1).normal(size=pol.params.shape)
    return pol


@pytest.mark.parametrize("param", ["tabular", "factored"])
def test_grad_logprob_matches_finite_differences(param):
    pol = make(param)
    actions = np.array([0, 3, 3, 6])
    adv = np.array([0.5, -1.0, 0.25, 2.0])

    def objective(params):
        return float((adv * np.log(pol.probs(params)[actions])).sum())

    analytic = pol.grad_logprob(actions, adv)
    eps = 1e-6
    numeric = np.array([
        (objective(pol.params + eps * e) - objective(pol.params - eps * e)) / (2 * eps)
        for e in np.eye(len(pol.params))
    ])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("param", ["tabular", "factored"])
def test_grad_entropy_matches_finite_differences(param):
    pol = make(param)
    eps = 1e-6
    numeric = np.array([
        (entropy(pol.probs(pol.params + eps * e)) - entropy(pol.probs(pol.params - eps * e)))
        / (2 * eps)
        for e in np.eye(len(pol.params))
    ])
    np.testing.assert_allclose(pol.grad_entropy(), numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("param", ["tabular", "factored"])
def test_probs_sum_to_one_and_uniform_start(param):
    pol = Policy(FIELD, ERA, param)
    np.testing.assert_allclose(pol.probs(), np.full(7, 1 / 7))
    assert entropy(pol.probs()) == pytest.approx(np.log(7))
    assert make(param).probs().sum() == pytest.approx(1.0)
    assert softmax(np.array([1000.0, 0.0])).sum() == pytest.approx(1.0)  # no overflow


@pytest.mark.parametrize("param", ["tabular", "factored"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_positive_advantage_raises_chosen_prob(param, optimizer):
    pol = Policy(FIELD, ERA, param, optimizer=optimizer, learning_rate=0.1)
    before = pol.probs()[4]
    pol.update(np.array([4, 1]), np.array([1.0, -1.0]))
    after = pol.probs()
    assert after[4] > before
    assert after[1] < before
    if param == "factored":  # the field term is shared: 6 (4's field) beats 3 (same era as 6)
        assert after[6] > after[3]


def test_factored_shares_evidence_within_field_tabular_does_not():
    tab, fac = Policy(FIELD, ERA, "tabular"), Policy(FIELD, ERA, "factored")
    for pol in (tab, fac):
        pol.update(np.array([4]), np.array([1.0]))
    # 6 shares person 4's field; 3 does not (and 3, 6 share an era)
    assert tab.probs()[6] == pytest.approx(tab.probs()[3])
    assert fac.probs()[6] > fac.probs()[3]


def test_sgd_step_is_lr_times_gradient_and_adam_first_step_is_lr_sign():
    sgd = Policy(FIELD, ERA, "tabular", optimizer="sgd", learning_rate=0.01)
    g = sgd.update(np.array([2, 3]), np.array([1.0, -0.5]))
    np.testing.assert_allclose(sgd.params, 0.01 * g)
    adam = Policy(FIELD, ERA, "tabular", optimizer="adam", learning_rate=0.01)
    g = adam.update(np.array([2, 3]), np.array([1.0, -0.5]))
    np.testing.assert_allclose(adam.params, 0.01 * np.sign(g), atol=1e-6)


def test_sample_follows_probs_and_is_seeded():
    pol = make("factored")
    a = pol.sample(np.random.default_rng(0), 20000)
    b = pol.sample(np.random.default_rng(0), 20000)
    np.testing.assert_array_equal(a, b)
    freq = np.bincount(a, minlength=7) / len(a)
    np.testing.assert_allclose(freq, pol.probs(), atol=0.015)


def test_baselines():
    r = np.array([1.0, 0.0, 0.5, 0.5])
    adv, _ = Baseline("rloo")(r)
    np.testing.assert_allclose(adv, r - (r.sum() - r) / 3)
    adv, _ = Baseline("mean")(r)
    np.testing.assert_allclose(adv, r - 0.5)
    ema = Baseline("ema", ema_decay=0.9)
    adv, b = ema(r)  # initialised from the first batch mean, not 0
    assert b == 0.5 and ema.value == pytest.approx(0.5)
    adv, b = ema(r + 1.0)
    assert b == pytest.approx(0.5) and ema.value == pytest.approx(0.9 * 0.5 + 0.1 * 1.5)
    seed = Baseline("ema", ema_init=0.0)
    adv, b = seed(r)
    assert b == 0.0 and np.allclose(adv, r)
    adv, _ = Baseline("mean", standardize=True)(r)
    assert adv.std() == pytest.approx(1.0, rel=1e-6)


def test_state_round_trip():
    pol = make("factored")
    pol.update(np.array([1, 2]), np.array([1.0, -1.0]))
    other = Policy(FIELD, ERA, "factored")
    other.load_state({k: np.asarray(v) for k, v in pol.state().items()})
    np.testing.assert_array_equal(other.probs(), pol.probs())
    assert other.step_count == 1
    with pytest.raises(ValueError):
        Policy(FIELD, ERA, "tabular").load_state(pol.state())


# --- contextual policies: logit(person | c) = shared + U[c, field] + V[c, era] ----------------
@pytest.mark.parametrize("param", ["tabular", "factored"])
def test_contextual_grad_matches_finite_differences(param):
    pol = make(param, n_contexts=3)
    actions, adv = np.array([0, 3, 6, 2]), np.array([0.5, -1.0, 0.25, 2.0])
    for context in (None, 0, 2):
        def objective(params, c=context):
            return float((adv * np.log(pol.probs(params, c)[actions])).sum())

        eps = 1e-6
        numeric = np.array([
            (objective(pol.params + eps * e) - objective(pol.params - eps * e)) / (2 * eps)
            for e in np.eye(len(pol.params))
        ])
        analytic = pol.grad_logprob(actions, adv, context=context)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_contextual_update_moves_only_its_own_context_terms():
    pol = Policy(FIELD, ERA, "factored", "sgd", learning_rate=0.5, n_contexts=2)
    shared = len(pol.params) - 2 * (3 + 2)
    # context 0 rewards a field-2 person; context 1 rewards a field-0 person
    pol.update(np.array([6, 0, 0, 6]), np.array([1.0, -1.0, 1.0, -1.0]),
               contexts=np.array([0, 0, 1, 1]))
    p0, p1 = pol.probs(context=0), pol.probs(context=1)
    assert p0[FIELD == 2].sum() > 3 / 7 and p1[FIELD == 0].sum() > 2 / 7
    assert p0[FIELD == 2].sum() > p1[FIELD == 2].sum()  # the contexts learned different things
    u = pol.params[shared:shared + 2 * 3].reshape(2, 3)
    assert u[0, 2] > 0 > u[1, 2] and u[1, 0] > 0 > u[0, 0]
    # a state round trip keeps the per-context terms
    other = Policy(FIELD, ERA, "factored", "sgd", n_contexts=2)
    other.load_state(pol.state())
    np.testing.assert_allclose(other.probs(context=1), p1)


def test_a_policy_without_contexts_is_unchanged_by_the_extension():
    a, b = make("factored"), make("factored", n_contexts=0)
    np.testing.assert_allclose(a.probs(), b.probs())
    assert len(a.params) == 7 + 3 + 2


# --- group_min_people: a field/era term needs evidence from >= m of its members -----------------
BIG_FIELD = np.repeat([0, 1, 2], 10)  # (30,) 3 fields of 10
BIG_ERA = np.tile([0, 1], 15)  # (30,) 2 eras


def test_breadth_is_the_effective_number_of_members_over_m():
    pol = Policy(BIG_FIELD, BIG_ERA, group_min_people=5)
    # uniform: each field spread over its 10 members -> full steps
    np.testing.assert_allclose(pol.breadth(BIG_FIELD, 3, pol.probs()), 1.0)
    np.testing.assert_allclose(Policy(BIG_FIELD, BIG_ERA, group_min_people=20).breadth(
        BIG_FIELD, 3, pol.probs()), 0.5)  # 10 members of the 20 asked for
    pol.params[0] = 6.0  # person 0 now holds nearly all of field 0
    p = pol.probs()
    b = pol.breadth(BIG_FIELD, 3, p)
    share = p[:10] / p[:10].sum()
    assert b[0] == pytest.approx(1 / (share**2).sum() / 5) and b[0] < 0.25
    np.testing.assert_allclose(b[1:], 1.0)
    scale = pol.step_scale()  # (P,): person terms full, field 0's term shrunk
    np.testing.assert_allclose(scale[:30], 1.0)
    assert scale[30] == pytest.approx(b[0])
    assert Policy(BIG_FIELD, BIG_ERA).step_scale().min() == 1.0  # m = 0: off


@pytest.mark.parametrize("m, ratio", [(0, (0.99, 1.01)), (5, (0.0, 0.4))])
def test_one_persons_luck_does_not_carry_its_field(m, ratio):
    """Person 0 wins 300 times against person 25: without the rule its field term grows exactly
    as much as its person term; with m = 5 the field term stops once 0 holds its field."""
    pol = Policy(BIG_FIELD, BIG_ERA, learning_rate=0.05, group_min_people=m)
    for _ in range(300):
        pol.update(np.array([0, 25]), np.array([0.5, -0.5]))
    assert ratio[0] <= pol.params[30] / pol.params[0] <= ratio[1]


def test_a_field_with_many_good_members_still_moves():
    """Ten different members of field 0 win in turn: every one holds 1/10 of the field, so the
    rule never binds and the field term moves exactly as without it."""
    runs = {}
    for m in (0, 5):
        pol = Policy(BIG_FIELD, BIG_ERA, learning_rate=0.05, group_min_people=m)
        for i in range(300):
            pol.update(np.array([i % 10, 10 + i % 20]), np.array([0.5, -0.5]))
        runs[m] = pol
    assert runs[5].params[30] == pytest.approx(runs[0].params[30], rel=0.02)
    assert runs[5].probs()[:10].sum() > 0.9


def test_logit_decay_pulls_towards_uniform_unless_evidence_holds():
    pol = Policy(BIG_FIELD, BIG_ERA, learning_rate=0.05, logit_decay=0.1)
    pol.params[:] = 2.0
    pol.update(np.array([3, 7]), np.array([0.0, 0.0]))  # no evidence: decay only
    np.testing.assert_allclose(pol.params, 2.0 * (1 - 0.05 * 0.1))
    # steady evidence for person 3 over person 25: its logit settles near 1 / decay, and then
    # drifts back once the evidence stops; without decay it keeps its height
    held, kept = Policy(BIG_FIELD, BIG_ERA, learning_rate=0.05, logit_decay=0.1), \
        Policy(BIG_FIELD, BIG_ERA, learning_rate=0.05)
    for pol in (held, kept):
        for _ in range(2000):
            pol.update(np.array([3, 25]), np.array([0.5, -0.5]))
    assert 7.0 < held.params[3] < 10.5
    peak = held.params[3]
    for pol in (held, kept):
        for _ in range(1000):
            pol.update(np.array([3, 25]), np.array([0.0, 0.0]))
    assert held.params[3] < 0.1 * peak
    assert kept.params[3] > 50  # without decay nothing pulls it back
