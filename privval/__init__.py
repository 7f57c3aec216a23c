"""privval: differentially private data valuation with rigorous privacy accounting."""

from __future__ import annotations

from privval.datasets import flip_labels, load_dataset
from privval.distributed import (
    dask_dp_tknn_shapley,
    dask_neighbor_counts,
    dask_tknn_shapley,
    shards_to_dask,
)
from privval.evaluate import detection_auroc
from privval.federated import (
    Coordinator,
    FederatedRound,
    Participant,
    ParticipantScore,
    simulate_federation,
)
from privval.knn import knn_shapley
from privval.neighbors import neighbor_counts
from privval.private import PrivacyGuarantee, ValuationRelease, dp_knn_shapley, dp_tknn_shapley
from privval.ptr import (
    PTRRelease,
    ValueSummary,
    distance_to_instability,
    local_sensitivity_at_distance,
    private_value_summary,
    ptr_release,
)
from privval.robust import (
    DPSGD,
    PTRSGD,
    StepResult,
    TrainingGuarantee,
    robust_aggregate,
    robust_distance_to_instability,
    robust_local_sensitivity_envelope,
    trimmed_sum_global_sensitivity,
)
from privval.threshold import tau_from_validation
from privval.tknn import tknn_point_values, tknn_shapley

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "detection_auroc",
    "flip_labels",
    "knn_shapley",
    "load_dataset",
    "neighbor_counts",
    "tau_from_validation",
    "tknn_point_values",
    "tknn_shapley",
    # privval.private
    "PrivacyGuarantee",
    "ValuationRelease",
    "dp_knn_shapley",
    "dp_tknn_shapley",
    # privval.distributed (Dask is imported only when one of these runs)
    "dask_dp_tknn_shapley",
    "dask_neighbor_counts",
    "dask_tknn_shapley",
    "shards_to_dask",
    # privval.federated
    "Coordinator",
    "FederatedRound",
    "Participant",
    "ParticipantScore",
    "simulate_federation",
    # privval.ptr
    "PTRRelease",
    "ValueSummary",
    "distance_to_instability",
    "local_sensitivity_at_distance",
    "private_value_summary",
    "ptr_release",
    # privval.robust (torch and Opacus are imported only when a trainer is built)
    "DPSGD",
    "PTRSGD",
    "StepResult",
    "TrainingGuarantee",
    "robust_aggregate",
    "robust_distance_to_instability",
    "robust_local_sensitivity_envelope",
    "trimmed_sum_global_sensitivity",
]
