"""accountants: mechanism descriptions, privacy accountants, secure noise and a privacy ledger."""

from __future__ import annotations

from accountants.accountant import (
    Accountant,
    UnsupportedEventError,
    available_accountants,
    make_accountant,
    register_accountant,
)
from accountants.calibrate import calibrate
from accountants.lattice import (
    LatticeGaussian,
    analytic_gaussian_delta,
    analytic_gaussian_noise_multiplier,
    calibrate_lattice_gaussian,
)
from accountants.pld import PldAccountant
from accountants.rdp import RdpAccountant
from accountants.noise import (
    NoiseSource,
    gaussian_release,
    lattice_for,
    lattice_release,
    make_noise_source,
    sample_discrete_gaussian,
    sample_discrete_laplace,
    sample_gaussian,
    sample_laplace,
)
from accountants.events import (
    SCHEMA_VERSION,
    ComposedDpEvent,
    DiscreteGaussianDpEvent,
    DiscreteLaplaceDpEvent,
    DpEvent,
    GaussianDpEvent,
    LaplaceDpEvent,
    NonPrivateDpEvent,
    NoOpDpEvent,
    PoissonSampledDpEvent,
    PTRDpEvent,
    SampledWithoutReplacementDpEvent,
    SelfComposedDpEvent,
    UnsupportedDpEvent,
    from_dict,
    from_json,
    to_dict,
    to_json,
)
from accountants.ptr import (
    PTRCalibration,
    PTRRdpTerms,
    calibrate_ptr,
    ptr_direct_epsilon,
    ptr_epsilon,
    ptr_epsilon_delta,
    ptr_rdp,
    ptr_rdp_terms,
    ptr_threshold,
)
from accountants.monte_carlo import (
    MonteCarloAccountant,
    MonteCarloEstimate,
    choose_importance_factor,
)
from accountants.evr import (
    Certificate,
    EVRResult,
    NoiseCalibration,
    SamplePlan,
    calibrate_noise,
    evr_release,
    plan_samples,
    verify,
)
from accountants.ledger import (
    Budget,
    BudgetExceededError,
    ChargeEntry,
    ChargeRecord,
    Ledger,
    LedgerCorruptError,
    LedgerError,
    PrivacyAmount,
    VerifyResult,
    fingerprint_arrays,
)
from accountants.report import render_report, report_schema

__all__: list[str] = [
    # accountants.events
    "SCHEMA_VERSION",
    "ComposedDpEvent",
    "DiscreteGaussianDpEvent",
    "DiscreteLaplaceDpEvent",
    "DpEvent",
    "GaussianDpEvent",
    "LaplaceDpEvent",
    "NonPrivateDpEvent",
    "NoOpDpEvent",
    "PoissonSampledDpEvent",
    "PTRDpEvent",
    "SampledWithoutReplacementDpEvent",
    "SelfComposedDpEvent",
    "UnsupportedDpEvent",
    "from_dict",
    "from_json",
    "to_dict",
    "to_json",
    # accountants.accountant
    "Accountant",
    "UnsupportedEventError",
    "available_accountants",
    "make_accountant",
    "register_accountant",
    # accountants.rdp / accountants.pld / accountants.calibrate
    "RdpAccountant",
    "PldAccountant",
    "calibrate",
    # accountants.lattice
    "LatticeGaussian",
    "analytic_gaussian_delta",
    "analytic_gaussian_noise_multiplier",
    "calibrate_lattice_gaussian",
    # accountants.noise
    "NoiseSource",
    "make_noise_source",
    "sample_discrete_gaussian",
    "sample_discrete_laplace",
    "gaussian_release",
    "lattice_for",
    "lattice_release",
    "sample_gaussian",
    "sample_laplace",
    # accountants.ptr
    "PTRCalibration",
    "PTRRdpTerms",
    "calibrate_ptr",
    "ptr_direct_epsilon",
    "ptr_epsilon",
    "ptr_epsilon_delta",
    "ptr_rdp",
    "ptr_rdp_terms",
    "ptr_threshold",
    # accountants.monte_carlo / accountants.evr (accountants.opacus needs torch: import it directly)
    "MonteCarloAccountant",
    "MonteCarloEstimate",
    "choose_importance_factor",
    "Certificate",
    "EVRResult",
    "NoiseCalibration",
    "SamplePlan",
    "calibrate_noise",
    "evr_release",
    "plan_samples",
    "verify",
    # accountants.ledger
    "Budget",
    "BudgetExceededError",
    "ChargeEntry",
    "ChargeRecord",
    "Ledger",
    "LedgerCorruptError",
    "LedgerError",
    "PrivacyAmount",
    "VerifyResult",
    "fingerprint_arrays",
    # accountants.report
    "render_report",
    "report_schema",
]
