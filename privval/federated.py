"""Federated DP-TKNN-Shapley: participants keep their records, the coordinator sees DP releases.

Setting. P participants each hold labelled records (e.g. embeddings); a coordinator holds the
validation set. Nobody may learn another party's records; each participant learns its own
records' values; the coordinator learns only differentially private releases.

One valuation round (DP-TKNN-Shapley, Wang et al. 2023, arXiv 2308.15709; DESIGN.md §3-4):

1. The coordinator broadcasts the T used validation points.
2. Each :class:`Participant` counts, on its own machine, the in-ball matching and non-matching
   records ``(Ca, Cm)`` of its **own secret Poisson subsample** per validation point: exact
   int64, no noise (:func:`privval.distributed.shard_counts`).
3. The coordinator sums the participants' counts through ``secure_sum`` (in-process by
   default; a deployment replaces the hook with secure aggregation so the coordinator sees only
   the sum), charges the ledger, adds the noise **once**, and broadcasts the noisy counts.
4. Each participant computes its records' values locally from the shared noisy counts plus its
   own records (own contribution exact).

Privacy of the count release: add/remove one record of any participant changes exactly one of
``(Ca, Cm)`` per validation point by 1, so the round is the same mechanism as the central one,
``SelfComposed(PoissonSampled(q, DiscreteGaussian(σ, 1)), T)``, charged once per round without a
scope (it touches every record).

Participant scores (released to the coordinator, record-level DP, one charge per participant
with ``scope=participant_id``: the parts are disjoint, so releases of different participants
compose in parallel and releases of one participant sequentially):

* ``method="sum"``: the sum of the participant's record values plus Gaussian noise. Given the
  public noisy counts, a record's value lies in ``[lo, hi]`` with ``lo = Σ_v min(0, B_v)`` and
  ``hi = Σ_v max(0, A_v)`` (``A_v``/``B_v`` the value of an added matching/non-matching record;
  divided by T for ``reduce="mean"``), so adding or removing one record changes the sum by at
  most ``Δ = max(hi, -lo)``. The sum is released by the lattice Gaussian mechanism
  (:mod:`accountants.lattice`): rounded to a power-of-two grid γ chosen from Δ, with exact
  discrete Gaussian noise, charged as ``DiscreteGaussianDpEvent(σ_Z, ⌊Δ(1 + 2⁻²⁰)/γ⌋ + 1)``
  whose (ε, δ) the PLD accountant checks; no floating-point noise is released. The noise
  scale is within 0.4% of the continuous Gaussian's ``z·Δ``. Neighbouring relation:
  add/remove one record.
* ``method="trimmed_mean"`` / ``"median"``: a robust summary of the record values released by
  Propose-Test-Release (:func:`privval.ptr.private_value_summary`, Wang et al. 2022) on the
  declared range ``[lo, hi]``. PTR's analysis is replace-one (participant sizes public), so
  these charges go to a separate ledger dataset (``robust_dataset``).

Both scores use each record's value *as if added* to the public noisy counts (the record's own
+1 is always added, :func:`privval.distributed.shard_values` with ``own_record="added"``): the
score is then a function of the public release and of the participant's own records only, and
the sequential composition with the count release is the textbook one. The per-record values a
participant keeps for itself use its subsample membership as in the central mechanism; they
never leave the participant.

Optional participant-level protection (a whole participant added or removed): with
``participant_cap=c`` each participant clips each of its two counts per validation point at
``c`` before the sum. A participant then changes each of the ``2T`` released counts by at most
``c``, so the round is also ``SelfComposed(DiscreteGaussian(σ, c), 2T)`` (``Gaussian(σ/c)``
for continuous noise) under add/remove one participant, with no subsampling amplification
claimed at that level. σ is the larger of the record-level and participant-level
calibrations; the participant-level event is charged to ``participant_dataset`` (a ledger
dataset whose unit is the participant). Record-level sensitivity stays 1 (clipping is
1-Lipschitz), so the record-level charge is unchanged.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from privval._validation import (
    _Described,
    check_choice,
    check_features,
    check_fraction,
    check_int,
    check_labels,
    check_metric,
    check_tau,
    fail,
)
from privval.distributed import shard_counts, shard_values, subsample_key

__all__ = [
    "Coordinator",
    "FederatedRound",
    "FederationSimulation",
    "Participant",
    "ParticipantScore",
    "gaussian_noise_multiplier",
    "plain_sum",
    "simulate_federation",
]

logger = logging.getLogger(__name__)

_RELATION = "add_or_remove_one"
SCORE_METHODS: tuple[str, ...] = ("sum", "trimmed_mean", "median")


def plain_sum(counts: Sequence[np.ndarray]) -> np.ndarray:
    """The default ``secure_sum``: the exact int64 sum of the participants' count arrays.

    A deployment replaces it with secure aggregation (the coordinator then sees only the sum);
    any replacement must return the same exact integer sum.

    Example
    -------
    >>> plain_sum([np.array([[1, 2]]), np.array([[3, 4]])]).tolist()
    [[4, 6]]
    """
    total = np.zeros_like(np.asarray(counts[0], dtype=np.int64))
    for c in counts:
        total += np.asarray(c, dtype=np.int64)
    return total


def _check_id(participant_id: Any, func: str) -> str | int:
    if isinstance(participant_id, bool) or not isinstance(participant_id, (str, numbers.Integral)):
        fail("participant_id", func, "a str or int", participant_id, error=TypeError)
    if isinstance(participant_id, str):
        if not participant_id:
            fail("participant_id", func, "a non-empty str or an int", participant_id)
        return participant_id
    return int(participant_id)


@dataclass
class _RoundState:
    key: int
    x_val: np.ndarray
    y_val: np.ndarray
    tau: float
    metric: str
    rate: float
    values: np.ndarray | None = None
    score_values: np.ndarray | None = None


class Participant:
    """One data owner: computes its counts and values locally, never shares its records.

    Parameters
    ----------
    x : array-like of shape (n, d)
        The participant's features (finite, at least one row).
    y : array-like of shape (n,)
        Its labels (integers or strings).
    participant_id : str or int
        Unique id; also the ledger ``scope`` of its score releases.
    rng : None, int or numpy.random.Generator
        Randomness of its secret subsamples and score noise. None: OS CSPRNG. A seed makes the
        participant reproducible and not secure.

    Raises
    ------
    ValueError, TypeError
        Empty or non-finite features, labels of the wrong length or type, a bad id.

    Example
    -------
    >>> import numpy as np
    >>> p = Participant(np.zeros((3, 2)), [0, 1, 1], "hospital-a")
    >>> p.n_records, p.n_features
    (3, 2)
    """

    def __init__(self, x: Any, y: Any, participant_id: str | int, *, rng: Any = None) -> None:
        func = "Participant"
        self.participant_id = _check_id(participant_id, func)
        self._x = check_features(x, "x", func)
        self._y = check_labels(y, "y", func, self._x.shape[0])
        if rng is not None and not isinstance(rng, np.random.Generator) and not (
                isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng >= 0):
            fail("rng", func, "None, a non-negative int seed or a numpy Generator", rng,
                 error=TypeError)
        self._gen = None if rng is None else (
            rng if isinstance(rng, np.random.Generator) else np.random.default_rng(int(rng)))
        self._rounds: dict[int, _RoundState] = {}

    @property
    def n_records(self) -> int:
        """Number of records held."""
        return int(self._x.shape[0])

    @property
    def n_features(self) -> int:
        """Feature dimension."""
        return int(self._x.shape[1])

    @property
    def label_kind(self) -> str:
        """``"str"`` or ``"int"``."""
        return "str" if self._y.dtype.kind in "US" else "int"

    @property
    def seeded(self) -> bool:
        """True when the participant's randomness is seeded (reproducible, not secure)."""
        return self._gen is not None

    def __repr__(self) -> str:
        return f"Participant({self.participant_id!r}, n_records={self.n_records})"

    def local_counts(
        self, round_id: int, x_val: np.ndarray, y_val: np.ndarray, *, tau: float, metric: str,
        sampling_rate: float, cap: int | None = None,
    ) -> np.ndarray:
        """Exact ``(T, 2)`` counts of this participant's own fresh secret Poisson subsample.

        Called by :meth:`Coordinator.run_round`. The subsample key is drawn here and never
        leaves the participant.
        """
        key = subsample_key(self._gen)
        self._rounds[round_id] = _RoundState(key, x_val, y_val, tau, metric, sampling_rate)
        return shard_counts(self._x, self._y, x_val, y_val, tau=tau, metric=metric,
                            sampling_rate=sampling_rate, key=key, cap=cap)

    def receive(self, round_: FederatedRound) -> None:
        """Compute this participant's record values from a round's broadcast noisy counts."""
        state = self._state(round_.round_id, "Participant.receive")
        common = {"tau": state.tau, "n_classes": round_.n_classes, "metric": state.metric,
                  "sampling_rate": state.rate, "key": state.key}
        divisor = float(state.x_val.shape[0]) if round_.reduce == "mean" else 1.0
        state.values = shard_values(self._x, self._y, state.x_val, state.y_val,
                                    round_.noisy_counts, own_record="subsample",
                                    **common) / divisor
        state.score_values = shard_values(self._x, self._y, state.x_val, state.y_val,
                                          round_.noisy_counts, own_record="added",
                                          **common) / divisor

    def record_values(self, round_id: int) -> np.ndarray:
        """This participant's per-record values for a round (kept locally; not DP as a whole).

        Raises
        ------
        ValueError
            If the round's noisy counts were not received yet.
        """
        state = self._state(round_id, "Participant.record_values")
        if state.values is None:
            fail("round_id", "Participant.record_values", "a round whose noisy counts were "
                 "received", round_id)
        return state.values.copy()

    def _score_values(self, round_id: int, func: str) -> np.ndarray:
        state = self._state(round_id, func)
        if state.score_values is None:
            fail("round_id", func, "a round whose noisy counts were received", round_id)
        return state.score_values

    def _state(self, round_id: int, func: str) -> _RoundState:
        if round_id not in self._rounds:
            fail("round_id", func, f"a round this participant took part in "
                 f"({sorted(self._rounds)})", round_id)
        return self._rounds[round_id]

    def _release_sum(self, round_id: int, mechanism: Any) -> float:
        """Noisy sum of the score values through a calibrated
        :class:`accountants.lattice.LatticeGaussian` (the coordinator has charged the ledger)."""
        from accountants.noise import make_noise_source

        total = math.fsum(self._score_values(round_id, "Participant._release_sum"))
        return float(mechanism.release(total, make_noise_source(self._gen)))

    def _release_robust(self, round_id: int, **ptr_kwargs: Any) -> Any:
        """PTR release of a robust summary of the score values, charged with this scope."""
        from privval.ptr import private_value_summary

        vals = self._score_values(round_id, "Participant._release_robust")
        groups = np.array([self.participant_id] * vals.shape[0])
        summary = private_value_summary(vals, groups, rng=self._gen, **ptr_kwargs)
        return summary.releases[self.participant_id]


@dataclass(frozen=True)
class FederatedRound:
    """The public outcome of one valuation round.

    Attributes
    ----------
    round_id : int
        Sequence number of the round at its coordinator.
    noisy_counts : np.ndarray of shape (T, 2), int64
        The shared noisy ``(Ca, Cm)``, clamped at 0 (the round's only DP release).
    validation_indices : np.ndarray of shape (T,)
        Which validation points were used.
    participant_ids : tuple
        Participants that contributed.
    epsilon, delta : float
        Record-level guarantee of this round (add/remove one record).
    accountant : str
        Accountant used to calibrate and state it.
    event_json : str
        The record-level event tree.
    noise : str
        ``"discrete_gaussian"`` or ``"gaussian"``.
    noise_scale : float
        σ on each count.
    sampling_rate : float
        Poisson rate q of each participant's subsample.
    n_classes : int
        Number of classes C (public).
    reduce : str
        ``"mean"`` or ``"sum"`` over the T validation points.
    seeded : bool
        Whether the round's randomness was seeded (reproducible, not secure): the
        coordinator's noise, or, with ``sampling_rate < 1``, any participant's subsample.
    ledger_entry : int or None
        The record-level charge.
    participant_level : dict or None
        With ``participant_cap``: ``{"cap", "epsilon", "delta", "event_json", "ledger_entry"}``,
        the guarantee for adding/removing a whole participant.
    """

    round_id: int
    noisy_counts: np.ndarray
    validation_indices: np.ndarray
    participant_ids: tuple
    epsilon: float
    delta: float
    accountant: str
    event_json: str
    noise: str
    noise_scale: float
    sampling_rate: float
    n_classes: int
    reduce: str
    seeded: bool
    ledger_entry: int | None
    participant_level: dict | None = None


@dataclass(frozen=True)
class ParticipantScore:
    """One participant's DP score.

    Attributes
    ----------
    participant_id : str or int
        Whose score.
    method : str
        ``"sum"``, ``"trimmed_mean"`` or ``"median"``.
    value : float or None
        The released score (None if a PTR release fell back to ⊥).
    epsilon, delta : float
        Target guarantee of this release for the participant's records.
    neighboring_relation : str
        ``"add_or_remove_one"`` (sum) or ``"replace_one"`` (PTR).
    sensitivity : float
        Δ of the sum (sum) or the proposed local-sensitivity bound β (PTR).
    noise_scale : float
        Scale of the Gaussian noise (pass branch for PTR); for the sum, γ·σ_Z of the lattice
        Gaussian, an upper bound on the noise's standard deviation.
    value_range : tuple of float
        ``(lo, hi)``: the public range of one record's score value.
    passed : bool or None
        PTR branch (None for the sum).
    ledger_entry : int or None
        The charge, scoped to the participant.
    """

    participant_id: str | int
    method: str
    value: float | None
    epsilon: float
    delta: float
    neighboring_relation: str
    sensitivity: float
    noise_scale: float
    value_range: tuple[float, float]
    passed: bool | None
    ledger_entry: int | None


class Coordinator:
    """Holds the validation set, sums counts, adds noise once, charges the ledger.

    Parameters
    ----------
    x_val, y_val : array-like
        Validation set (the coordinator's own data, not protected).
    tau : float
        Ball radius (``d <= tau``).
    epsilon, delta : float
        Record-level target of each round.
    ledger : accountants.ledger.Ledger, optional
        Charged before every release.
    dataset : str, optional
        Ledger dataset of the federation's records (required with ``ledger``).
    sampling_rate : float, optional
        Poisson rate q of each participant's subsample; default that of the central mechanism
        (:func:`privval.distributed.default_sampling_rate`).
    n_val_used : int, optional
        Validation points T used per round (default all).
    noise : {"discrete_gaussian", "gaussian"}
        Noise on the summed counts.
    accountant : {"pld", "rdp"}
        Calibrates σ and states ε.
    metric : {"euclidean", "cosine"}
        Distance.
    n_classes : int, optional
        Number of classes C (public); default the distinct validation labels.
    reduce : {"mean", "sum"}
        Values averaged or summed over the T points.
    secure_sum : callable, optional
        ``secure_sum(list_of_count_arrays) -> (T, 2) int array``; default :func:`plain_sum`.
    participant_cap : int, optional
        Per-participant cap on each count per validation point (participant-level protection,
        module docstring); requires ``participant_epsilon`` and ``participant_delta``.
    participant_epsilon, participant_delta : float, optional
        Participant-level target of each round.
    participant_dataset : str, optional
        Ledger dataset charged with the participant-level event (required with a ledger and
        ``participant_cap``).
    rng : None, int or numpy.random.Generator
        Coordinator's randomness (noise, validation choice). None: OS CSPRNG.

    Raises
    ------
    ValueError, TypeError
        Invalid parameters.

    Example
    -------
    >>> import numpy as np
    >>> gen = np.random.default_rng(0)
    >>> parts = [Participant(gen.normal(size=(40, 2)), gen.integers(0, 2, 40), i, rng=i)
    ...          for i in range(3)]
    >>> coord = Coordinator(gen.normal(size=(10, 2)), gen.integers(0, 2, 10), tau=1.0,
    ...                     epsilon=1.0, delta=1e-5, rng=0)
    >>> rnd = coord.run_round(parts)
    >>> rnd.noisy_counts.shape, parts[0].record_values(rnd.round_id).shape
    ((10, 2), (40,))
    """

    def __init__(
        self,
        x_val: Any,
        y_val: Any,
        *,
        tau: float,
        epsilon: float,
        delta: float,
        ledger: Any = None,
        dataset: str | None = None,
        sampling_rate: float | None = None,
        n_val_used: int | None = None,
        noise: str = "discrete_gaussian",
        accountant: str = "pld",
        metric: str = "euclidean",
        n_classes: int | None = None,
        reduce: str = "mean",
        secure_sum: Callable[[Sequence[np.ndarray]], np.ndarray] | None = None,
        participant_cap: int | None = None,
        participant_epsilon: float | None = None,
        participant_delta: float | None = None,
        participant_dataset: str | None = None,
        rng: Any = None,
    ) -> None:
        from privval.distributed import _check_epsilon_delta, _check_ledger

        func = "Coordinator"
        self.x_val = check_features(x_val, "x_val", func)
        self.y_val = check_labels(y_val, "y_val", func, self.x_val.shape[0])
        self.tau = check_tau(tau, func)
        self.epsilon, self.delta = _check_epsilon_delta(epsilon, delta, func)
        _check_ledger(ledger, dataset, func)
        self.ledger, self.dataset = ledger, dataset
        from privval.distributed import default_sampling_rate

        self.sampling_rate = check_fraction(
            default_sampling_rate() if sampling_rate is None else sampling_rate,
            "sampling_rate", func, low_open=True)
        m = self.x_val.shape[0]
        self.n_val_used = m if n_val_used is None else check_int(
            n_val_used, "n_val_used", func, minimum=1, maximum=m)
        self.noise = check_choice(noise, "noise", func, ("discrete_gaussian", "gaussian"))
        self.accountant = check_choice(accountant, "accountant", func, ("pld", "rdp"))
        self.metric = check_metric(metric, func)
        seen = int(np.unique(self.y_val).shape[0])
        self.n_classes = seen if n_classes is None else check_int(
            n_classes, "n_classes", func, minimum=seen)
        self.reduce = check_choice(reduce, "reduce", func, ("mean", "sum"))
        if secure_sum is not None and not callable(secure_sum):
            fail("secure_sum", func, "a callable or None", secure_sum, error=TypeError)
        self.secure_sum = plain_sum if secure_sum is None else secure_sum
        self.participant_cap = None
        if participant_cap is not None:
            self.participant_cap = check_int(participant_cap, "participant_cap", func, minimum=1)
            if participant_epsilon is None or participant_delta is None:
                fail("participant_epsilon", func, "given (with participant_delta) when "
                     "participant_cap is set", participant_epsilon)
            self.participant_epsilon, self.participant_delta = _check_epsilon_delta(
                participant_epsilon, participant_delta, func)
            if ledger is not None and (not isinstance(participant_dataset, str)
                                       or not participant_dataset
                                       or participant_dataset == dataset):
                fail("participant_dataset", func, "a ledger dataset name other than 'dataset' "
                     "(its unit is the participant) when a ledger and participant_cap are "
                     "given", participant_dataset)
        elif participant_epsilon is not None or participant_delta is not None:
            fail("participant_cap", func, "set when participant_epsilon/participant_delta are "
                 "given", participant_cap)
        self.participant_dataset = participant_dataset
        if rng is not None and not isinstance(rng, np.random.Generator) and not (
                isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng >= 0):
            fail("rng", func, "None, a non-negative int seed or a numpy Generator", rng,
                 error=TypeError)
        self._gen = None if rng is None else (
            rng if isinstance(rng, np.random.Generator) else np.random.default_rng(int(rng)))
        self.rounds: list[FederatedRound] = []
        self._sigma, self._event, self._claimed, self._p_event, self._p_claimed = \
            self._calibrate()

    # ----------------------------------------------------------------- calibration
    def _calibrate(self) -> tuple[float, Any, float, Any, float | None]:
        """σ for both targets, the events at that σ and the ε each one actually reaches."""
        from accountants.calibrate import calibrate
        from privval.private import _calibrate_cached, _count_event, _epsilon_of

        t = self.n_val_used
        # The same calibration as dp_tknn_shapley, so a federated round and a central release
        # with equal parameters add the same noise.
        sigma, claimed = _calibrate_cached("counts", (self.sampling_rate, self.noise, t),
                                           self.epsilon, self.delta, self.accountant)
        p_event, p_claimed = None, None
        if self.participant_cap is not None:
            sigma_p = float(calibrate(self._participant_event, self.participant_epsilon,
                                      self.participant_delta, accountant=self.accountant))
            sigma = max(sigma, sigma_p)
            p_event = self._participant_event(sigma)
            p_claimed = _epsilon_of(p_event, self.participant_delta, self.accountant)
            logger.debug("participant level: cap=%d, sigma_p=%.4g", self.participant_cap, sigma_p)
        event = _count_event(sigma, self.sampling_rate, self.noise, t)
        if self.participant_cap is not None:
            claimed = _epsilon_of(event, self.delta, self.accountant)
        return sigma, event, claimed, p_event, p_claimed

    def _participant_event(self, sigma: float) -> Any:
        """2T counts, each changed by at most ``cap`` when one participant is added/removed."""
        from accountants import events as ev

        cap = int(self.participant_cap)
        base = ev.DiscreteGaussianDpEvent(sigma, cap) if self.noise == "discrete_gaussian" \
            else ev.GaussianDpEvent(sigma / cap)
        return ev.SelfComposedDpEvent(base, 2 * self.n_val_used)

    @property
    def noise_scale(self) -> float:
        """σ on each count (the larger of the record- and participant-level calibrations)."""
        return self._sigma

    # ----------------------------------------------------------------- rounds
    def _check_participants(self, participants: Any, func: str) -> list[Participant]:
        if isinstance(participants, Participant) or not isinstance(participants, Sequence) \
                or len(participants) == 0:
            fail("participants", func, "a non-empty list of Participant", participants,
                 error=TypeError if not isinstance(participants, Sequence) else ValueError)
        seen: dict[Any, int] = {}
        dups = []
        for p in participants:
            if not isinstance(p, Participant):
                fail("participants", func, "a list of Participant objects", p, error=TypeError)
            if p.n_records == 0:
                fail("participants", func, "participants with at least one record",
                     _Described(f"participant {p.participant_id!r} with no records"))
            if p.n_features != self.x_val.shape[1]:
                fail("participants", func, f"participants with {self.x_val.shape[1]} features "
                     f"(like x_val)", _Described(f"participant {p.participant_id!r} with "
                                                 f"{p.n_features} features"))
            if p.label_kind != ("str" if self.y_val.dtype.kind in "US" else "int"):
                fail("participants", func, "participants whose labels are of the same kind as "
                     "y_val", _Described(f"participant {p.participant_id!r} with "
                                         f"{p.label_kind} labels"), error=TypeError)
            if p.participant_id in seen:
                dups.append(p.participant_id)
            seen[p.participant_id] = 1
        if dups:
            fail("participants", func, "participants with distinct participant ids",
                 _Described(f"duplicate ids {sorted(set(map(str, dups)))}"))
        return list(participants)

    def run_round(self, participants: Sequence[Participant], *,
                  purpose: str | None = None) -> FederatedRound:
        """Run one valuation round: local counts, secure sum, one charge, noise once, broadcast.

        Parameters
        ----------
        participants : list of Participant
            Distinct ids, non-empty, same feature dimension and label kind as the validation
            set.
        purpose : str, optional
            Stored with the ledger charge.

        Returns
        -------
        FederatedRound
            The public release; every participant has received it (its values are ready).

        Raises
        ------
        ValueError, TypeError
            Bad participants or a ``secure_sum`` result that is not a (T, 2) integer array
            (nothing is charged).
        accountants.ledger.BudgetExceededError
            The ledger refused the charge; nothing was released.
        """
        from accountants import events as ev
        from accountants.noise import make_noise_source
        from privval.distributed import _draw_count_noise

        func = "Coordinator.run_round"
        parts = self._check_participants(participants, func)
        if purpose is not None and not isinstance(purpose, str):
            fail("purpose", func, "a str or None", purpose, error=TypeError)
        round_id = len(self.rounds)
        m, t = self.x_val.shape[0], self.n_val_used
        if t < m:
            chooser = self._gen if self._gen is not None else np.random.default_rng(
                secrets.randbits(128))
            used = np.sort(chooser.choice(m, size=t, replace=False)).astype(np.int64)
        else:
            used = np.arange(m, dtype=np.int64)
        xu, yu = self.x_val[used], self.y_val[used]
        local = [p.local_counts(round_id, xu, yu, tau=self.tau, metric=self.metric,
                                sampling_rate=self.sampling_rate, cap=self.participant_cap)
                 for p in parts]
        total = np.asarray(self.secure_sum(local))
        if total.shape != (t, 2) or total.dtype.kind not in "iu":
            fail("secure_sum", func, f"a hook returning a ({t}, 2) integer array",
                 _Described(f"an array of shape {total.shape} and dtype {total.dtype}"))
        total = total.astype(np.int64)
        source = make_noise_source(self._gen)
        # The secret subsamples are part of the mechanism: a participant whose generator is
        # seeded makes them predictable, so the round is reproducible and not secure.
        seeded = source.seeded or (self.sampling_rate < 1.0 and any(p.seeded for p in parts))

        def release() -> np.ndarray:
            z = _draw_count_noise(self.noise, self._sigma, total.shape, source)
            return np.maximum(total + z, 0)

        entry_id, p_entry_id = None, None
        sampling: Any = "none" if self.sampling_rate >= 1.0 else {
            "type": "poisson", "rate": self.sampling_rate}
        details = {"mechanism": "federated dp_tknn_shapley round", "round": round_id,
                   "noise": self.noise, "sigma": self._sigma, "n_val_used": t,
                   "participants": [str(p.participant_id) for p in parts]}
        if self.ledger is None:
            noisy = release()
        elif self.participant_cap is None:
            with self.ledger.charge(self.dataset, self._event, sensitivity=1, sampling=sampling,
                                    seeded=seeded, purpose=purpose,
                                    details=details) as entry:
                noisy = release()
            entry_id = int(entry.id)
        else:
            # Two charges, each committed on entering: a refusal of the second would leave the
            # first spent with nothing released, so dry-run the second's cap check first.
            from privval.ptr import _refuse_if_over

            _refuse_if_over(self.ledger, self.participant_dataset, self._p_event,
                            relation=_RELATION)
            with self.ledger.charge(self.dataset, self._event, sensitivity=1, sampling=sampling,
                                    seeded=seeded, purpose=purpose,
                                    details=details) as entry, \
                    self.ledger.charge(self.participant_dataset, self._p_event,
                                       sensitivity=self.participant_cap, sampling="none",
                                       seeded=seeded, purpose=purpose,
                                       details={**details, "unit": "participant",
                                                "participant_cap": self.participant_cap}
                                       ) as p_entry:
                noisy = release()
            entry_id, p_entry_id = int(entry.id), int(p_entry.id)
        participant_level = None
        if self.participant_cap is not None:
            participant_level = {"cap": self.participant_cap, "epsilon": self._p_claimed,
                                 "delta": self.participant_delta,
                                 "event_json": ev.to_json(self._p_event),
                                 "ledger_entry": p_entry_id}
        rnd = FederatedRound(
            round_id=round_id, noisy_counts=noisy, validation_indices=used,
            participant_ids=tuple(p.participant_id for p in parts), epsilon=self._claimed,
            delta=self.delta, accountant=self.accountant, event_json=ev.to_json(self._event),
            noise=self.noise, noise_scale=self._sigma, sampling_rate=self.sampling_rate,
            n_classes=self.n_classes, reduce=self.reduce, seeded=seeded,
            ledger_entry=entry_id, participant_level=participant_level)
        self.rounds.append(rnd)
        for p in parts:
            p.receive(rnd)
        logger.info("federated round %d: %d participants, sigma=%.4g", round_id, len(parts),
                    self._sigma)
        return rnd

    # ----------------------------------------------------------------- scores
    def value_range(self, round_: FederatedRound) -> tuple[float, float]:
        """Public range ``(lo, hi)`` of one record's score value given a round's noisy counts.

        A record added to the noisy counts is worth ``A_v > 0`` (matching) or ``B_v < 0``
        (non-matching) in each ball it falls in and 0 elsewhere, so its total lies in
        ``[Σ_v B_v, Σ_v A_v]`` (divided by T for ``reduce="mean"``).
        """
        from privval.distributed import _own_record_weights

        _, a_out, _, b_out = _own_record_weights(round_.noisy_counts, round_.n_classes)
        divisor = float(round_.noisy_counts.shape[0]) if round_.reduce == "mean" else 1.0
        lo = float(np.sum(np.minimum(b_out, 0.0)) / divisor)
        hi = float(np.sum(np.maximum(a_out, 0.0)) / divisor)
        return lo, hi

    def score_participants(
        self,
        round_: FederatedRound,
        participants: Sequence[Participant],
        *,
        epsilon: float,
        delta: float,
        method: str = "sum",
        trim: float = 0.25,
        proposed_bound_fraction: float = 0.25,
        robust_dataset: str | None = None,
        purpose: str | None = None,
    ) -> dict[str | int, ParticipantScore]:
        """Release each participant's DP score for a round, charged with its own scope.

        Parameters
        ----------
        round_ : FederatedRound
            A round of this coordinator (its noisy counts fix the value range).
        participants : list of Participant
            Participants of that round.
        epsilon, delta : float
            Per-participant target of this score release (record-level).
        method : {"sum", "trimmed_mean", "median"}
            Noisy sum (Gaussian, add/remove one record) or a PTR robust summary (replace one
            record; module docstring).
        trim : float, default 0.25
            Fraction trimmed from each side (trimmed mean). PTR passes only if the data are
            more than ``B = b·ln(1/(2δ0))`` records from instability, and a trimmed mean is
            at most ``trim·n`` records away, so heavy trimming is what makes it pass.
        proposed_bound_fraction : float, default 0.25
            PTR's proposed local-sensitivity bound β as a fraction of the statistic's global
            sensitivity on the declared range (a public, data-independent choice).
        robust_dataset : str, optional
            Ledger dataset (replace-one relation) for the PTR charges; required with a ledger
            and a robust method.
        purpose : str, optional
            Stored with each charge.

        Returns
        -------
        dict
            participant id -> :class:`ParticipantScore`.

        Raises
        ------
        ValueError, TypeError
            Invalid parameters or participants not in the round (nothing is charged).
        accountants.ledger.BudgetExceededError
            A participant's charge would be refused: checked for every participant before
            any is charged, so nothing is spent (barring a concurrent charge elsewhere).
        """
        func = "Coordinator.score_participants"
        if not isinstance(round_, FederatedRound) or round_.round_id >= len(self.rounds) or \
                self.rounds[round_.round_id] is not round_:
            fail("round_", func, "a FederatedRound returned by this coordinator", round_,
                 error=TypeError if not isinstance(round_, FederatedRound) else ValueError)
        parts = self._check_participants(participants, func)
        missing = [p.participant_id for p in parts if p.participant_id not in round_.participant_ids]
        if missing:
            fail("participants", func, "participants of the round",
                 _Described(f"ids {missing} that did not take part"))
        method = check_choice(method, "method", func, SCORE_METHODS)
        from privval.distributed import _check_epsilon_delta

        eps, dlt = _check_epsilon_delta(epsilon, delta, func)
        trim = check_fraction(trim, "trim", func, high_open=True)
        if trim >= 0.5:
            fail("trim", func, "a float in [0, 0.5)", trim)
        frac = check_fraction(proposed_bound_fraction, "proposed_bound_fraction", func,
                              low_open=True)
        if purpose is not None and not isinstance(purpose, str):
            fail("purpose", func, "a str or None", purpose, error=TypeError)
        if method != "sum" and self.ledger is not None and (
                not isinstance(robust_dataset, str) or not robust_dataset
                or robust_dataset in (self.dataset, self.participant_dataset)):
            fail("robust_dataset", func, "a separate ledger dataset name for the replace-one PTR "
                 "charges when a ledger is given", robust_dataset)
        lo, hi = self.value_range(round_)
        if self.ledger is not None and len(parts) > 1:
            # One charge per participant, each committed on entering: refuse the whole call
            # before any is charged if one of them would not fit.
            from privval.ptr import _plan, _refuse_if_over

            for p in parts:
                if method == "sum":
                    _refuse_if_over(self.ledger, self.dataset,
                                    _sum_mechanism(eps, dlt, lo, hi).event,
                                    relation=_RELATION, scope=p.participant_id)
                else:
                    kwargs = self._robust_kwargs(p, method, eps, dlt, lo, hi, trim, frac)[0]
                    plan = _plan(p._score_values(round_.round_id, func), method, func=func,
                                 **kwargs)
                    _refuse_if_over(self.ledger, robust_dataset, plan.event,
                                    relation="replace_one", scope=p.participant_id)
        if method == "sum":
            return {p.participant_id: self._score_sum(round_, p, eps, dlt, lo, hi, purpose)
                    for p in parts}
        return {p.participant_id: self._score_robust(round_, p, method, eps, dlt, lo, hi, trim,
                                                     frac, robust_dataset, purpose)
                for p in parts}

    def _score_sum(self, round_: FederatedRound, p: Participant, eps: float, dlt: float,
                   lo: float, hi: float, purpose: str | None) -> ParticipantScore:
        sens = max(hi, -lo)
        mech = _sum_mechanism(eps, dlt, lo, hi)
        entry_id = None
        if self.ledger is None:
            value = p._release_sum(round_.round_id, mech)
        else:
            with self.ledger.charge(self.dataset, mech.event, sensitivity=mech.sensitivity,
                                    sampling="none", seeded=p.seeded, purpose=purpose,
                                    scope=p.participant_id,
                                    details={"mechanism": "federated participant score (sum, "
                                                          "lattice Gaussian)",
                                             "round": round_.round_id,
                                             "value_range": [lo, hi], "grid": mech.grid,
                                             "grid_steps": mech.steps}) as entry:
                value = p._release_sum(round_.round_id, mech)
            entry_id = int(entry.id)
        return ParticipantScore(p.participant_id, "sum", value, eps, dlt, _RELATION, sens,
                                mech.noise_scale, (lo, hi), None, entry_id)

    @staticmethod
    def _robust_kwargs(p: Participant, method: str, eps: float, dlt: float, lo: float,
                       hi: float, trim: float, frac: float) -> tuple[dict, float, Any]:
        """PTR parameters of one participant's robust score: (ptr kwargs, β, calibration)."""
        from accountants.ptr import calibrate_ptr

        n = p.n_records
        t = (n - 1) // 2 if method == "median" else int(np.floor(trim * n))
        width = hi - lo
        gs_pass = width / max(n - 2 * t, 1)
        beta = frac * gs_pass
        gs_fail = width / n
        cal = calibrate_ptr(eps, dlt, 1, proposed_bound=beta, global_sensitivity_pass=gs_pass,
                            global_sensitivity_fail=gs_fail)
        kwargs = {"bounds": (lo, hi), "proposed_bound": beta, "test_scale": cal.test_scale,
                  "delta0": cal.delta0, "sigma_pass": cal.sigma_pass, "fallback": "mean",
                  "sigma_fail": cal.sigma_fail, "trim": t}
        return kwargs, beta, cal

    def _score_robust(self, round_: FederatedRound, p: Participant, method: str, eps: float,
                      dlt: float, lo: float, hi: float, trim: float, frac: float,
                      robust_dataset: str | None, purpose: str | None) -> ParticipantScore:
        kwargs, beta, cal = self._robust_kwargs(p, method, eps, dlt, lo, hi, trim, frac)
        release = p._release_robust(
            round_.round_id, statistic=method, **kwargs,
            ledger=self.ledger, dataset=robust_dataset if self.ledger is not None else None,
            purpose=purpose)
        value = None if release.value is None else float(np.asarray(release.value).reshape(-1)[0])
        return ParticipantScore(p.participant_id, method, value, eps, dlt, "replace_one", beta,
                                cal.sigma_pass, (lo, hi), bool(release.passed),
                                release.ledger_entry)


@functools.lru_cache(maxsize=64)
def _sum_mechanism(eps: float, dlt: float, lo: float, hi: float) -> Any:
    """The lattice Gaussian of a participant's ``method="sum"`` score: sensitivity max(hi, −lo)
    (1 where that is 0: the sum is then 0 on every dataset), (ε, δ) checked by PLD."""
    from accountants.lattice import calibrate_lattice_gaussian

    sens = max(hi, -lo)
    return calibrate_lattice_gaussian(eps, dlt, sens if sens > 0 else 1.0, accountant="pld",
                                      owner="Coordinator.score_participants")


def gaussian_noise_multiplier(epsilon: float, delta: float) -> float:
    """Smallest noise multiplier z of the Gaussian mechanism that is (ε, δ)-DP, from the exact
    curve δ(ε) = Φ(μ/2 - ε/μ) - e^ε Φ(-μ/2 - ε/μ), μ = 1/z (Balle & Wang 2018, Thm. 8); see
    :func:`accountants.lattice.analytic_gaussian_noise_multiplier`.

    Example
    -------
    >>> round(gaussian_noise_multiplier(1.0, 1e-5), 3)
    3.731
    """
    from accountants.lattice import analytic_gaussian_noise_multiplier

    return analytic_gaussian_noise_multiplier(epsilon, delta)


# --------------------------------------------------------------------------- simulation
@dataclass(frozen=True)
class FederationSimulation:
    """Outcome of :func:`simulate_federation`.

    Attributes
    ----------
    participants : list of Participant
        The simulated participants.
    coordinator : Coordinator
        The coordinator (its ``rounds`` hold the public releases).
    round : FederatedRound
        The valuation round.
    scores : dict
        participant id -> :class:`ParticipantScore`.
    corrupted : tuple
        Ids of the participants whose labels were flipped.
    ranking : tuple
        Participant ids from highest to lowest score.
    """

    participants: list
    coordinator: Coordinator
    round: FederatedRound
    scores: dict
    corrupted: tuple
    ranking: tuple = field(default=())


def simulate_federation(
    x: Any,
    y: Any,
    n_participants: int,
    *,
    tau: float | None = None,
    n_corrupted: int = 1,
    flip_fraction: float = 0.5,
    val_fraction: float = 0.2,
    epsilon: float = 1.0,
    delta: float = 1e-5,
    score_epsilon: float = 1.0,
    score_delta: float = 1e-5,
    method: str = "sum",
    sampling_rate: float | None = None,
    n_val_used: int | None = None,
    accountant: str = "pld",
    metric: str = "euclidean",
    tau_quantile: float = 0.1,
    ledger: Any = None,
    dataset: str | None = None,
    robust_dataset: str | None = None,
    rng: Any = None,
) -> FederationSimulation:
    """Split a labelled dataset into a coordinator's validation set and P participants, run one
    DP valuation round and score every participant.

    The first ``n_corrupted`` participants (ids ``"p0"``, ``"p1"``, ...) get ``flip_fraction``
    of their labels flipped (:func:`privval.datasets.flip_labels`), so a good
    scoring ranks them last. Records are shuffled and dealt out evenly.

    Parameters
    ----------
    x, y : array-like
        Features (n, d) and labels.
    n_participants : int
        P >= 1.
    tau : float, optional
        Radius; default the ``tau_quantile`` quantile of validation-to-validation distances
        (validation data only, so no privacy cost).
    n_corrupted : int, default 1
        Participants with flipped labels, in [0, P].
    flip_fraction : float, default 0.5
        Fraction of their labels flipped.
    val_fraction : float, default 0.2
        Share of the records given to the coordinator as its validation set.
    epsilon, delta : float
        Record-level target of the round.
    score_epsilon, score_delta : float
        Per-participant target of the scores.
    method : {"sum", "trimmed_mean", "median"}
        Score.
    sampling_rate : float, optional
        Poisson rate q (default as in :class:`Coordinator`).
    n_val_used : int, optional
        Validation points T used (default all).
    accountant : {"pld", "rdp"}
        Calibrates the count noise.
    metric : {"euclidean", "cosine"}
        Distance.
    tau_quantile : float, default 0.1
        Quantile for the default ``tau``.
    ledger, dataset, robust_dataset
        Optional ledger (see :class:`Coordinator`).
    rng : None, int or numpy.random.Generator
        Seed for the split, the flips and all noise (reproducible, not secure).

    Returns
    -------
    FederationSimulation

    Raises
    ------
    ValueError, TypeError
        Invalid parameters, or too few records for P participants and a validation set.

    Example
    -------
    >>> from sklearn.datasets import load_breast_cancer
    >>> data = load_breast_cancer()
    >>> sim = simulate_federation(data.data, data.target, 4, epsilon=2.0, rng=0)
    >>> sim.corrupted, len(sim.ranking)
    (('p0',), 4)
    """
    from privval.datasets import flip_labels

    func = "simulate_federation"
    xs = check_features(x, "x", func)
    ys = check_labels(y, "y", func, xs.shape[0])
    p_count = check_int(n_participants, "n_participants", func, minimum=1)
    n_bad = check_int(n_corrupted, "n_corrupted", func, minimum=0, maximum=p_count)
    flip = check_fraction(flip_fraction, "flip_fraction", func)
    vf = check_fraction(val_fraction, "val_fraction", func, low_open=True, high_open=True)
    method = check_choice(method, "method", func, SCORE_METHODS)
    tq = check_fraction(tau_quantile, "tau_quantile", func, low_open=True)
    gen = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    seeded = rng is not None
    n = xs.shape[0]
    n_val = max(1, round(vf * n))
    if n - n_val < p_count:
        fail("n_participants", func, f"at most {n - n_val} (one record each after the "
             f"validation split)", p_count)
    order = gen.permutation(n)
    val_idx, train_idx = order[:n_val], order[n_val:]
    xv, yv = xs[val_idx], ys[val_idx]
    if tau is None:
        from scipy.spatial.distance import pdist

        sample = xv[:500].astype(np.float64)
        d = pdist(sample, metric="euclidean" if metric == "euclidean" else "cosine")
        tau = float(np.quantile(d, tq)) if d.size else 1.0
    tau = check_tau(tau, func)
    classes = np.unique(ys)
    parts = []
    corrupted = []
    for i, idx in enumerate(np.array_split(train_idx, p_count)):
        pid = f"p{i}"
        labels = ys[idx].copy()
        if i < n_bad and flip > 0:
            labels, _ = flip_labels(labels, flip, gen)
            corrupted.append(pid)
        parts.append(Participant(xs[idx], labels, pid,
                                 rng=int(gen.integers(2**62)) if seeded else None))
    coord = Coordinator(xv, yv, tau=tau, epsilon=epsilon, delta=delta, ledger=ledger,
                        dataset=dataset, sampling_rate=sampling_rate, metric=metric,
                        n_val_used=n_val_used, accountant=accountant,
                        n_classes=int(classes.shape[0]),
                        rng=int(gen.integers(2**62)) if seeded else None)
    rnd = coord.run_round(parts, purpose="simulate_federation")
    scores = coord.score_participants(rnd, parts, epsilon=score_epsilon, delta=score_delta,
                                      method=method, robust_dataset=robust_dataset,
                                      purpose="simulate_federation score")
    ranking = tuple(sorted(scores, key=lambda k: -(scores[k].value if scores[k].value
                                                   is not None else -np.inf)))
    return FederationSimulation(parts, coord, rnd, scores, tuple(corrupted), ranking)
