"""An Opacus accountant backed by the Monte Carlo accountant and the EVR verifier.

Importing this module registers :class:`EVRAccountant` with Opacus under the name ``"evr"``,
so ``opacus.PrivacyEngine(accountant="evr")`` uses it. Needs the ``torch`` extra
(``pip install 'privval[torch]'``).

Each optimiser step of DP-SGD (Poisson sampling rate q, noise multiplier σ) is one
``PoissonSampledDpEvent(q, GaussianDpEvent(σ))`` under the add/remove-one relation; the
accountant composes it into the Monte Carlo running sums in O(n_samples).

``get_epsilon(delta)`` returns the Monte Carlo **estimate** (not an upper bound), like
Opacus' PRV accountant returns its own numbers without a verifier. ``get_epsilon(delta,
verify=True)`` runs estimate-verify-release's verifier (:func:`accountants.evr.verify`) on
fresh samples: on acceptance it returns a verified ε whose guarantee is
(ε, τ·δ_b + p) = (ε, delta); on rejection it returns the rigorous accountant's ε at ``delta``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from opacus.accountants.accountant import IAccountant
from opacus.accountants.registry import register_accountant as _opacus_register

from accountants import evr as _evr
from accountants.accountant import make_accountant
from accountants.events import (
    ComposedDpEvent,
    DpEvent,
    GaussianDpEvent,
    NoOpDpEvent,
    PoissonSampledDpEvent,
    SelfComposedDpEvent,
)
from accountants.evr import Certificate, _real
from accountants.monte_carlo import MonteCarloAccountant, MonteCarloEstimate

__all__ = ["EVRAccountant"]

logger = logging.getLogger(__name__)


def _step_event(noise_multiplier: float, sample_rate: float) -> DpEvent:
    gaussian = GaussianDpEvent(noise_multiplier)
    return gaussian if sample_rate == 1.0 else PoissonSampledDpEvent(sample_rate, gaussian)


class EVRAccountant(IAccountant):
    """Opacus ``IAccountant`` with Monte Carlo estimates and optional EVR verification.

    Parameters
    ----------
    n_samples : int, default 100_000
        Monte Carlo sample size of the running estimate.
    rng : None, int or numpy.random.Generator, default None
        Randomness of the estimate (None: OS CSPRNG).
    device : str, default "cpu"
        Sampling device ("cuda" uses the torch backend).
    importance_factor : float, default 1.0
        Importance sampling of the estimate (inflated Poisson rate), in [1, inf).
    ledger : accountants.ledger.Ledger, optional
        If given, every step is charged to ``dataset`` (event, sampling rate, certificate-free).
    dataset : str, optional
        Ledger dataset; required with ``ledger``.
    secure_mode : bool, default False
        Whether Opacus draws its noise in secure mode; False records the charges as seeded
        (torch's default generator is not a CSPRNG).
    purpose : str, optional
        Recorded with each ledger charge.

    Example
    -------
    >>> acc = EVRAccountant(n_samples=20_000, rng=0)
    >>> for _ in range(100):
    ...     acc.step(noise_multiplier=1.0, sample_rate=0.05)
    >>> acc.history, len(acc)
    ([(1.0, 0.05, 100)], 100)
    >>> 1.0 < acc.get_epsilon(1e-3, verify=False) < 2.5  # the estimate (not a bound)
    True
    """

    def __init__(
        self,
        n_samples: int = 100_000,
        rng: None | int | np.random.Generator = None,
        device: str = "cpu",
        *,
        importance_factor: float = 1.0,
        ledger: Any = None,
        dataset: str | None = None,
        secure_mode: bool = False,
        purpose: str | None = None,
    ) -> None:
        if ledger is not None and not isinstance(dataset, str):
            raise ValueError(
                "The 'dataset' parameter of EVRAccountant must be a str when a ledger is given. "
                f"Got {dataset!r} instead."
            )
        self.history: list[tuple[float, float, int]] = []
        self._mc_args = {"n_samples": n_samples, "rng": rng, "device": device,
                         "importance_factor": importance_factor}
        self._mc = MonteCarloAccountant(n_samples, rng, device, importance_factor=importance_factor)
        # The history the running sums in ``_mc`` were composed from. Opacus code (e.g.
        # ``get_noise_multiplier``) assigns ``history`` directly; queries then rebuild ``_mc``.
        self._mc_history: list[tuple[float, float, int]] = []
        self.ledger = ledger
        self.dataset = dataset
        self.secure_mode = bool(secure_mode)
        self.purpose = purpose
        self.last_certificate: Certificate | None = None

    # ------------------------------------------------------------------ Opacus API
    def step(self, *, noise_multiplier: float, sample_rate: float) -> None:
        """Account for one DP-SGD step (Poisson rate ``sample_rate``, multiplier σ).

        Raises
        ------
        ValueError
            If ``noise_multiplier`` is not in (0, inf) or ``sample_rate`` not in (0, 1].
        """
        sigma = _real(noise_multiplier, "noise_multiplier", "EVRAccountant.step", 0.0, math.inf)
        q = _real(sample_rate, "sample_rate", "EVRAccountant.step", 0.0, 1.0, open_high=False)
        event = _step_event(sigma, q)
        if self.ledger is not None:
            sampling = {"type": "poisson", "rate": q}
            with self.ledger.charge(self.dataset, event, sensitivity=1.0, sampling=sampling,
                                    seeded=not self.secure_mode, purpose=self.purpose):
                pass
        self._sync()
        self._mc.compose(event)
        if self.history and self.history[-1][:2] == (sigma, q):
            self.history[-1] = (sigma, q, self.history[-1][2] + 1)
        else:
            self.history.append((sigma, q, 1))
        self._mc_history = list(self.history)

    def get_optimizer_hook_fn(self, sample_rate: float) -> Any:
        """Opacus' step hook, failing closed when the ledger refuses the step.

        Opacus calls this hook inside ``DPOptimizer.step`` after the noise is added to the
        gradients and before the parameters are updated. If :meth:`step` raises (the ledger
        refused the charge, or a bad parameter), the hook first clears every parameter's
        noisy gradient (``grad``, ``summed_grad``, ``grad_sample``), so a refused step leaves
        neither a parameter update nor a noisy gradient computed from the data behind.
        """
        def hook_fn(optim: Any) -> None:
            try:
                self.step(noise_multiplier=optim.noise_multiplier,
                          sample_rate=sample_rate * optim.accumulated_iterations)
            except BaseException:
                for p in optim.params:
                    p.grad = None
                    for name in ("summed_grad", "grad_sample"):
                        if getattr(p, name, None) is not None:
                            setattr(p, name, None)
                raise

        return hook_fn

    def _sync(self) -> None:
        """Rebuild the Monte Carlo sums if ``history`` was assigned from outside (fresh draws)."""
        if list(self.history) == self._mc_history:
            return
        history = [(float(s), float(q), int(n)) for s, q, n in self.history]
        for s, q, n in history:
            if not (s > 0 and 0 < q <= 1 and n >= 0):
                raise ValueError(f"Invalid EVRAccountant history entry {(s, q, n)!r}.")
        self.history = history
        self._mc = MonteCarloAccountant(**self._mc_args)
        if history:
            self._mc.compose(self.event)
        self._mc_history = list(history)

    def get_epsilon(
        self,
        delta: float,
        *,
        verify: bool = True,
        tau: float = 2.0,
        p: float | None = None,
        kappa: float = 2.0,
        fallback_accountant: str = "pld",
        rng: None | int | np.random.Generator = None,
    ) -> float:
        """ε spent so far at ``delta``: a verified value (default), or a Monte Carlo estimate.

        Parameters
        ----------
        delta : float
            Target δ in (0, 1).
        verify : bool, default True
            True (the default, so that what Opacus reports and calibrates against is never
            below the privacy loss): estimate ε̂ at
            δ_b/κ with δ_b = (delta - p)/τ, verify (ε̂ + SE, δ_b) on fresh samples, and return
            it if accepted (guarantee (ε, delta)); otherwise the ``fallback_accountant``'s
            rigorous ε at ``delta``. The certificate is kept in ``last_certificate``. The
            verifier draws ``plan_samples(δ_b, τ, p).n_samples`` T-step paths: expensive
            for small δ. Each call is one verification attempt and spends its own p:
            calling again after a rejection (hoping for acceptance) adds p per call, which
            the returned (ε, delta) does not include. False: the Monte Carlo point
            estimate, which is **not an upper bound** (about half the time it is below the
            true ε); use it for monitoring only, or call :meth:`estimate_epsilon` for the
            estimate with its standard error.
        tau, p, kappa : float
            Verifier slack, false-positive bound (default delta/10) and utility margin.
        fallback_accountant : str, default "pld"
            Rigorous accountant used when verification rejects.
        rng : None, int or numpy.random.Generator
            Verifier randomness (None: OS CSPRNG).

        Returns
        -------
        float
            ε ≥ 0 (0 before any step).
        """
        owner = "EVRAccountant.get_epsilon"
        delta = _real(delta, "delta", owner, 0.0, 1.0)
        self._sync()
        if not verify:
            return self._mc.get_epsilon(delta)
        p = delta / 10.0 if p is None else _real(p, "p", owner, 0.0, delta)
        tau = _real(tau, "tau", owner, 1.0, math.inf)
        kappa = _real(kappa, "kappa", owner, 1.0, math.inf)
        delta_b = (delta - p) / tau * (1.0 - 1e-9)
        estimate = self._mc.estimate_epsilon(delta_b / kappa)
        claim = estimate.value + estimate.standard_error
        if not math.isfinite(claim):
            claim = estimate.value
        cert = _evr.verify(self.event, claim, delta_b, tau=tau, p=p, rng=rng,
                           device=self._mc_args["device"])
        self.last_certificate = cert
        if cert.accepted:
            return cert.guarantee_epsilon
        logger.warning("EVR verification rejected ε=%g; reporting the %s bound instead.",
                       claim, fallback_accountant)
        return make_accountant(fallback_accountant).compose(self.event).get_epsilon(delta)

    def estimate_epsilon(self, delta: float) -> MonteCarloEstimate:
        """The Monte Carlo estimate of ε(δ) with its standard error (not a bound)."""
        self._sync()
        return self._mc.estimate_epsilon(delta)

    @property
    def event(self) -> DpEvent:
        """The composed DP-SGD history as one event tree."""
        if not self.history:
            return NoOpDpEvent()
        return ComposedDpEvent(
            [SelfComposedDpEvent(_step_event(s, q), n) for s, q, n in self.history]
        )

    def __len__(self) -> int:
        """Number of optimisation steps taken so far."""
        return sum(n for _, _, n in self.history)

    @classmethod
    def mechanism(cls) -> str:
        """Registry name: ``"evr"``."""
        return "evr"

    def load_state_dict(self, state_dict: Any) -> None:
        """Load a history (Opacus format) and re-sample the estimate for it (fresh draws)."""
        super().load_state_dict(state_dict)
        history = [(float(s), float(q), int(n)) for s, q, n in self.history]
        for s, q, n in history:
            if not (s > 0 and 0 < q <= 1 and n >= 0) or isinstance(n, bool):
                raise ValueError(f"Invalid EVRAccountant history entry {(s, q, n)!r}.")
        self.history = history
        self._mc = MonteCarloAccountant(**self._mc_args)
        if history:
            self._mc.compose(self.event)
        self._mc_history = list(history)


try:
    _opacus_register("evr", EVRAccountant)
except ValueError:  # already registered by an earlier import of this module
    pass
