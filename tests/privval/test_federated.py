"""Federated DP-TKNN-Shapley: exact sums, one release per round, scoped scores, caps, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from dp_accounting.pld import privacy_loss_distribution as pldm
from scipy.stats import norm

from accountants.events import from_json
from accountants.ledger import Ledger
from privval.datasets import load_dataset
from privval.federated import (
    Coordinator,
    FederatedRound,
    Participant,
    gaussian_noise_multiplier,
    simulate_federation,
)
from privval.neighbors import neighbor_counts
from privval.tknn import tknn_point_values

TAU = 1.5


@pytest.fixture(scope="module")
def setup():
    gen = np.random.default_rng(3)
    xs = [gen.normal(size=(n, 3)) for n in (40, 55, 30, 45)]
    ys = [gen.integers(0, 3, x.shape[0]) for x in xs]
    xv = gen.normal(size=(12, 3))
    yv = np.arange(12) % 3
    return xs, ys, xv, yv


def _participants(xs, ys, seed=0):
    return [Participant(x, y, f"p{i}", rng=seed + i) for i, (x, y) in enumerate(zip(xs, ys))]


def _ledger(tmp_path, *names, epsilon=100.0):
    ledger = Ledger(str(tmp_path / "ledger.db"), record=())
    for name in names:
        ledger.set_budget(name, epsilon=epsilon, delta=1e-4, accountant="rdp")
    return ledger


def _oracle_values(x, y, xv, yv, noisy, *, added):
    """Brute force from the noisy counts: own +1 always (``added``) or raised to >= 1 (q = 1)."""
    out = np.zeros(x.shape[0])
    for v in range(xv.shape[0]):
        inball = np.linalg.norm(x - xv[v], axis=1) <= TAU
        ca, cm = noisy[v]
        if added:
            a = tknn_point_values([ca + 1], [cm], 3)[0][0]
            b = tknn_point_values([ca], [cm + 1], 3)[1][0]
        else:
            a = tknn_point_values([max(ca, 1)], [cm], 3)[0][0]
            b = tknn_point_values([ca], [max(cm, 1)], 3)[1][0]
        out += np.where(inball, np.where(y == yv[v], a, b), 0.0)
    return out / xv.shape[0]


def test_summed_participant_counts_equal_central_counts(setup):
    xs, ys, xv, yv = setup
    seen = []

    def recording_sum(counts):
        seen.append([c.copy() for c in counts])
        return np.sum(counts, axis=0)

    parts = _participants(xs, ys)
    coord = Coordinator(xv, yv, tau=TAU, epsilon=50.0, delta=1e-5, secure_sum=recording_sum,
                        accountant="rdp", n_classes=3, sampling_rate=1.0, rng=1)
    rnd = coord.run_round(parts)
    central = neighbor_counts(np.vstack(xs), np.concatenate(ys), xv, yv, tau=TAU)
    assert len(seen) == 1 and len(seen[0]) == 4
    np.testing.assert_array_equal(np.sum(seen[0], axis=0), central)
    # The noise was added once to that sum: its spread matches one draw of scale sigma.
    assert np.all(np.abs(rnd.noisy_counts - central) <= 6 * rnd.noise_scale + 1)
    for p, x, y in zip(parts, xs, ys):
        np.testing.assert_allclose(p.record_values(rnd.round_id),
                                   _oracle_values(x, y, xv, yv, rnd.noisy_counts, added=False),
                                   rtol=1e-10, atol=1e-14)


def test_subsampled_rounds_use_fresh_secret_subsamples(setup):
    xs, ys, xv, yv = setup
    totals = []
    coord = Coordinator(xv, yv, tau=TAU, epsilon=50.0, delta=1e-5, sampling_rate=0.5,
                        accountant="rdp", n_classes=3, rng=2,
                        secure_sum=lambda cs: totals.append(np.sum(cs, axis=0)) or totals[-1])
    parts = _participants(xs, ys)
    coord.run_round(parts)
    coord.run_round(parts)
    central = neighbor_counts(np.vstack(xs), np.concatenate(ys), xv, yv, tau=TAU)
    assert np.all(totals[0] <= central) and np.all(totals[1] <= central)
    assert not np.array_equal(totals[0], totals[1])
    n_in = central.sum()  # Binomial(n_in, 1/2) total, 6 standard deviations: alpha << 1e-6
    assert abs(totals[0].sum() - n_in / 2) < 6 * math.sqrt(n_in / 4)


def test_one_count_charge_per_round_and_scores_compose_in_parallel(setup, tmp_path):
    from dp_accounting import dp_event
    from dp_accounting.rdp import rdp_privacy_accountant

    xs, ys, xv, yv = setup
    ledger = _ledger(tmp_path, "fed")
    parts = _participants(xs, ys)
    coord = Coordinator(xv, yv, tau=TAU, epsilon=1.0, delta=1e-5, ledger=ledger, dataset="fed",
                        noise="gaussian", accountant="rdp", n_classes=3, sampling_rate=1.0,
                        rng=4)
    r0 = coord.run_round(parts, purpose="round 0")
    r1 = coord.run_round(parts, purpose="round 1")
    scores = coord.score_participants(r1, parts, epsilon=0.5, delta=1e-6)
    history = ledger.history("fed")
    unscoped = [h for h in history if h.scope is None]
    scoped = [h for h in history if h.scope is not None]
    assert [h.id for h in unscoped] == [r0.ledger_entry, r1.ledger_entry]
    assert sorted(h.scope for h in scoped) == ["p0", "p1", "p2", "p3"]
    assert {scores[p.participant_id].ledger_entry for p in parts} == {h.id for h in scoped}

    # Independent replay with dp-accounting: two rounds plus ONE participant's score.
    z = gaussian_noise_multiplier(0.5, 1e-6)
    one = rdp_privacy_accountant.RdpAccountant()
    one.compose(dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(r0.noise_scale), 12), 2)
    one.compose(dp_event.GaussianDpEvent(z))
    every = rdp_privacy_accountant.RdpAccountant()
    every.compose(dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(r0.noise_scale), 12), 2)
    every.compose(dp_event.GaussianDpEvent(z), 4)
    spent = ledger.spent("fed").epsilon
    assert spent == pytest.approx(one.get_epsilon(1e-4), rel=2e-2)
    assert spent < every.get_epsilon(1e-4)


def test_score_sensitivity_bound_and_noise_calibration(setup, tmp_path):
    xs, ys, xv, yv = setup
    parts = _participants(xs, ys)
    coord = Coordinator(xv, yv, tau=TAU, epsilon=5.0, delta=1e-5, accountant="rdp",
                        n_classes=3, rng=5)
    rnd = coord.run_round(parts)
    lo, hi = coord.value_range(rnd)
    assert lo < 0 < hi
    for p, x, y in zip(parts, xs, ys):
        vals = _oracle_values(x, y, xv, yv, rnd.noisy_counts, added=True)
        assert np.all(vals >= lo - 1e-15) and np.all(vals <= hi + 1e-15)
        np.testing.assert_allclose(p._score_values(rnd.round_id, "test"), vals, rtol=1e-10,
                                   atol=1e-14)
    ledger = Ledger(tmp_path / "fed.sqlite")
    ledger.set_budget("fed", epsilon=100.0, delta=1e-4, accountant="pld")
    coord.ledger, coord.dataset = ledger, "fed"
    scores = coord.score_participants(rnd, parts, epsilon=1.0, delta=1e-5)
    z = gaussian_noise_multiplier(1.0, 1e-5)
    sens = max(hi, -lo)
    # The sum is released on a power-of-two grid gamma with S/gamma in [256, 512) (from S alone).
    gamma = 2.0 ** (math.frexp(sens)[1] - 9)
    steps = math.floor(sens * (1 + 2.0**-20) / gamma) + 1
    for p, s in zip(parts, scores.values()):
        assert s.sensitivity == pytest.approx(sens)
        # Within the rounding's +1 step (<= 0.4%) of the continuous Gaussian's z*S, never below.
        assert z * sens <= s.noise_scale <= z * sens * (1 + 1 / 256) * (1 + 2**-11)
        on_grid = s.value / gamma
        assert on_grid == round(on_grid) and s.value != np.sum(p._score_values(rnd.round_id, "t"))
        event = {h.id: h for h in ledger.history("fed")}[s.ledger_entry].event_json["event"]
        assert event["type"] == "accountants.DiscreteGaussianDpEvent"
        assert event["sensitivity"] == steps and event["sigma"] * gamma == s.noise_scale
        # Oracle, independent of our PLD wrapper: dp-accounting's discrete Gaussian PLD of the
        # charged event meets (1, 1e-5); 1% less noise does not.
        pld = pldm.from_discrete_gaussian_mechanism(event["sigma"], sensitivity=steps,
                                                    value_discretization_interval=1e-4)
        assert pld.get_epsilon_for_delta(1e-5) <= 1.0 + 1e-3
        less = pldm.from_discrete_gaussian_mechanism(0.99 * event["sigma"], sensitivity=steps,
                                                     value_discretization_interval=1e-4)
        assert less.get_epsilon_for_delta(1e-5) > 1.0
    # Oracle: the exact Gaussian curve (Balle & Wang 2018) at z meets delta, at 0.999 z it fails.
    def delta_at(zz, eps=1.0):
        return norm.cdf(-eps * zz + 0.5 / zz) - math.exp(eps) * norm.cdf(-eps * zz - 0.5 / zz)
    assert delta_at(z) <= 1e-5 < delta_at(0.999 * z)


@pytest.mark.parametrize("method", ["sum", "trimmed_mean"])
def test_corrupted_participant_ranks_last_in_most_seeds(method):
    data = load_dataset("digits", val_fraction=0.2, seed=0)
    x = np.vstack([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    last = 0
    for seed in range(6):
        sim = simulate_federation(x, y, 5, n_corrupted=1, flip_fraction=0.5, epsilon=1.0,
                                  score_epsilon=2.0, n_val_used=50, accountant="rdp",
                                  method=method, rng=seed)
        assert sim.corrupted == ("p0",)
        last += sim.ranking[-1] == "p0"
    assert last >= 5


def test_participant_level_caps_bound_each_participants_influence(tmp_path):
    gen = np.random.default_rng(9)
    xs = [gen.normal(scale=0.5, size=(60, 2)) for _ in range(3)]
    ys = [gen.integers(0, 2, 60) for _ in range(3)]
    xv, yv = gen.normal(scale=0.5, size=(8, 2)), np.arange(8) % 2
    cap = 3
    totals = []
    ledger = _ledger(tmp_path, "rec", "who")
    coord = Coordinator(xv, yv, tau=1.0, epsilon=1.0, delta=1e-5, ledger=ledger,
                        dataset="rec", participant_cap=cap, participant_epsilon=2.0,
                        participant_delta=1e-5, participant_dataset="who", accountant="rdp",
                        sampling_rate=1.0,
                        secure_sum=lambda cs: totals.append(np.sum(cs, axis=0)) or totals[-1],
                        rng=0)
    rnd = coord.run_round(_participants(xs, ys))
    uncapped = [neighbor_counts(x, y, xv, yv, tau=1.0) for x, y in zip(xs, ys)]
    assert max(c.max() for c in uncapped) > cap  # without the cap one participant moves more
    np.testing.assert_array_equal(totals[0], sum(np.minimum(c, cap) for c in uncapped))
    for j in range(3):  # removing participant j moves every released count by at most cap
        without = sum(np.minimum(c, cap) for i, c in enumerate(uncapped) if i != j)
        assert np.abs(totals[0] - without).max() <= cap

    level = rnd.participant_level
    event = from_json(level["event_json"])
    assert event.count == 2 * 8 and event.event.sensitivity == cap
    assert event.event.sigma == rnd.noise_scale
    assert level["epsilon"] <= 2.0
    # zCDP oracle (Canonne, Kamath, Steinke 2020): rho = 2T cap^2 / (2 sigma^2) bounds it.
    rho = 2 * 8 * cap**2 / (2 * rnd.noise_scale**2)
    assert level["epsilon"] <= rho + 2 * math.sqrt(rho * math.log(1 / 1e-5)) + 1e-9
    record_only = Coordinator(xv, yv, tau=1.0, epsilon=1.0, delta=1e-5, accountant="rdp",
                              sampling_rate=1.0)
    assert rnd.noise_scale >= record_only.noise_scale
    assert rnd.epsilon <= 1.0
    who = ledger.history("who")
    assert len(who) == 1 and who[0].id == level["ledger_entry"] and who[0].sensitivity == cap
    assert len(ledger.history("rec")) == 1


def test_refused_participant_level_charge_spends_no_record_level_budget(setup, tmp_path):
    """With participant_cap a round makes two charges; if the participant-level dataset
    refuses, nothing may stay spent on the record-level dataset and nothing is released.
    Oracle: the ledger's own history of both datasets."""
    from accountants.ledger import BudgetExceededError

    xs, ys, xv, yv = setup
    ledger = Ledger(str(tmp_path / "ledger.db"), record=())
    ledger.set_budget("rec", epsilon=100.0, delta=1e-4, accountant="rdp")
    ledger.set_budget("who", epsilon=0.5, delta=1e-4, accountant="rdp")
    coord = Coordinator(xv, yv, tau=TAU, epsilon=1.0, delta=1e-5, ledger=ledger, dataset="rec",
                        participant_cap=2, participant_epsilon=2.0, participant_delta=1e-5,
                        participant_dataset="who", accountant="rdp", sampling_rate=1.0, rng=0)
    parts = _participants(xs, ys)
    with pytest.raises(BudgetExceededError):
        coord.run_round(parts)
    assert ledger.history("rec") == [] and ledger.history("who") == []
    assert coord.rounds == []
    with pytest.raises(ValueError, match="round"):
        parts[0].record_values(0)


def test_round_is_marked_seeded_when_a_participants_subsample_is_seeded(setup, tmp_path):
    """The secret Poisson subsample is part of the mechanism (amplification needs it
    unpredictable): a participant with a seeded generator makes the round reproducible and
    not secure even when the coordinator's noise comes from the CSPRNG. Oracle: the same
    participant seeds reproduce every participant's exact counts (so they are predictable),
    and the round and its ledger row must then say seeded."""
    xs, ys, xv, yv = setup
    ledger = _ledger(tmp_path, "rec")
    kw = {"tau": TAU, "epsilon": 1.0, "delta": 1e-5, "sampling_rate": 0.5, "accountant": "rdp"}
    first = [p.local_counts(0, xv, yv, tau=TAU, metric="euclidean", sampling_rate=0.5)
             for p in _participants(xs, ys, seed=40)]
    again = [p.local_counts(0, xv, yv, tau=TAU, metric="euclidean", sampling_rate=0.5)
             for p in _participants(xs, ys, seed=40)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))  # predictable subsamples
    coord = Coordinator(xv, yv, ledger=ledger, dataset="rec", rng=None, **kw)
    rnd = coord.run_round(_participants(xs, ys, seed=40))
    assert rnd.seeded is True
    assert ledger.history("rec")[-1].seeded is True
    secure = [Participant(x, y, f"s{i}") for i, (x, y) in enumerate(zip(xs, ys))]
    assert Coordinator(xv, yv, rng=None, **kw).run_round(secure).seeded is False


@pytest.mark.parametrize("method", ["sum", "median"])
def test_scores_refused_for_one_participant_spend_nothing_for_the_others(setup, tmp_path, method):
    """score_participants charges one scope per participant; a refusal for a later one must
    come before any earlier one is charged (their scores would be spent, never returned).
    Oracle: a fresh RDP accountant composing the ledger's own recorded events fixes a cap
    that holds one more score in a fresh scope but not in a scope that already has one."""
    from accountants.accountant import make_accountant
    from accountants.ledger import BudgetExceededError

    xs, ys, xv, yv = setup
    ds = "rec" if method == "sum" else "rob"
    ledger = _ledger(tmp_path, "rec", "rob", epsilon=1e6)
    coord = Coordinator(xv, yv, tau=TAU, epsilon=1.0, delta=1e-5, ledger=ledger, dataset="rec",
                        accountant="rdp", rng=0)
    parts = _participants(xs, ys)
    rnd = coord.run_round(parts)
    kw = {"epsilon": 1.0, "delta": 1e-5, "method": method, "robust_dataset": "rob"}
    coord.score_participants(rnd, [parts[1]], **kw)  # scope p1 holds one score
    events = [h.event for h in ledger.history(ds)]

    def eps(evs):
        acc = make_accountant("rdp")
        for e in evs:
            acc.compose(e)
        return acc.get_epsilon(1e-4)

    fits, not_fits = eps(events), eps(events + [events[-1]])  # p0 fresh, p1 again
    assert fits < not_fits
    ledger.set_budget(ds, epsilon=0.5 * (fits + not_fits), delta=1e-4, accountant="rdp")
    before = len(ledger.history(ds))
    with pytest.raises(BudgetExceededError):
        coord.score_participants(rnd, [parts[0], parts[1]], **kw)
    assert len(ledger.history(ds)) == before  # p0 was not charged
    assert coord.score_participants(rnd, [parts[0]], **kw)["p0"].ledger_entry is not None


def test_robust_scores_go_to_a_replace_one_dataset(setup, tmp_path):
    xs, ys, xv, yv = setup
    ledger = _ledger(tmp_path, "fed", "fed-robust")
    parts = _participants(xs, ys)
    coord = Coordinator(xv, yv, tau=TAU, epsilon=1.0, delta=1e-5, ledger=ledger, dataset="fed",
                        accountant="rdp", n_classes=3, rng=6)
    rnd = coord.run_round(parts)
    with pytest.raises(ValueError, match="'robust_dataset'"):
        coord.score_participants(rnd, parts, epsilon=2.0, delta=1e-5, method="median")
    scores = coord.score_participants(rnd, parts, epsilon=2.0, delta=1e-5, method="median",
                                      robust_dataset="fed-robust")
    history = ledger.history("fed-robust")
    assert sorted(h.scope for h in history) == ["p0", "p1", "p2", "p3"]
    assert all(h.neighboring_relation == "replace_one" for h in history)
    lo, hi = coord.value_range(rnd)
    for s in scores.values():
        assert s.neighboring_relation == "replace_one" and s.value_range == (lo, hi)


def test_bad_input_is_refused_and_nothing_is_charged(setup, tmp_path):
    xs, ys, xv, yv = setup
    ledger = _ledger(tmp_path, "fed")
    coord = Coordinator(xv, yv, tau=TAU, epsilon=1.0, delta=1e-5, ledger=ledger, dataset="fed",
                        accountant="rdp", n_classes=3)
    good = _participants(xs, ys)
    with pytest.raises(ValueError, match="'participants'.*4 features"):
        coord.run_round(good[:2] + [Participant(np.zeros((5, 4)), [0] * 5, "wide")])
    with pytest.raises(ValueError, match="'x' parameter of Participant must be a non-empty"):
        Participant(np.zeros((0, 3)), [], "empty")
    with pytest.raises(ValueError, match="distinct participant ids"):
        coord.run_round(good + [Participant(xs[0], ys[0], "p1")])
    with pytest.raises(ValueError, match="non-empty list"):
        coord.run_round([])
    with pytest.raises(TypeError, match="same kind as y_val"):
        coord.run_round([Participant(xs[0], ys[0].astype(str), "s")])
    with pytest.raises(TypeError, match="'participant_id'"):
        Participant(xs[0], ys[0], 1.5)
    bad_sum = Coordinator(xv, yv, tau=TAU, epsilon=1.0, delta=1e-5, ledger=ledger,
                          dataset="fed", accountant="rdp", secure_sum=lambda cs: cs[0][:3])
    with pytest.raises(ValueError, match="'secure_sum'"):
        bad_sum.run_round(good)
    with pytest.raises(ValueError, match="'participant_epsilon'"):
        Coordinator(xv, yv, tau=TAU, epsilon=1.0, delta=1e-5, participant_cap=2)
    with pytest.raises(ValueError, match="'epsilon'"):
        Coordinator(xv, yv, tau=TAU, epsilon=-1.0, delta=1e-5)
    assert ledger.history("fed") == []
    rnd = coord.run_round(good)
    with pytest.raises(ValueError, match="'participants'.*did not take part"):
        coord.score_participants(rnd, [Participant(xs[0], ys[0], "new")], epsilon=1.0,
                                 delta=1e-5)
    assert len(ledger.history("fed")) == 1
    assert isinstance(rnd, FederatedRound) and json.loads(rnd.event_json)


@pytest.mark.parametrize("noise, accountant, q", [("gaussian", "rdp", 1.0),
                                                   ("discrete_gaussian", "pld", 0.5)])
def test_round_noise_equals_the_central_release_at_equal_parameters(setup, noise, accountant, q):
    # A federated round releases the same T count pairs as dp_tknn_shapley on the pooled data,
    # so both must add the same noise.
    from privval.private import dp_tknn_shapley

    xs, ys, xv, yv = setup
    coord = Coordinator(xv, yv, tau=TAU, epsilon=1.0, delta=1e-5, noise=noise,
                        accountant=accountant, n_classes=3, sampling_rate=q, rng=1)
    r = coord.run_round(_participants(xs, ys))
    central = dp_tknn_shapley(np.vstack(xs), np.concatenate(ys), xv, yv, tau=TAU, epsilon=1.0,
                              delta=1e-5, noise=noise, accountant=accountant, n_classes=3,
                              sampling_rate=q, rng=1)
    assert r.noise_scale == central.noise_scale


def test_round_claim_replays_with_dp_accounting(setup):
    # Oracle: dp-accounting's RDP for T Gaussian count pairs at the round's sigma.
    from dp_accounting import dp_event
    from dp_accounting.rdp import rdp_privacy_accountant

    xs, ys, xv, yv = setup
    coord = Coordinator(xv, yv, tau=TAU, epsilon=1.0, delta=1e-5, noise="gaussian",
                        accountant="rdp", n_classes=3, sampling_rate=1.0, rng=1)
    r = coord.run_round(_participants(xs, ys))
    acc = rdp_privacy_accountant.RdpAccountant()
    acc.compose(dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(r.noise_scale), len(yv)))
    assert acc.get_epsilon(1e-5) <= 1.0 + 1e-9
