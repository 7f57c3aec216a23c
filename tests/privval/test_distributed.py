"""The Dask path: equality with the in-memory path, retries, noise once, shards, bad input.

One module-scoped LocalCluster (2 worker processes, 1 thread each) serves every test; process
workers are needed so that a worker can really die mid-computation.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import dask
import dask.array as da

from accountants import noise as noise_module
from accountants.ledger import Ledger
from privval.distributed import (
    dask_dp_tknn_shapley,
    dask_neighbor_counts,
    dask_tknn_shapley,
    shard_counts,
    shards_to_dask,
)
from privval.neighbors import neighbor_counts
from privval.tknn import tknn_point_values, tknn_shapley

pytestmark = pytest.mark.dask

N, M, D, TAU = 640, 24, 4, 1.6


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", memory_limit="1GiB")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def data():
    gen = np.random.default_rng(7)
    x = gen.normal(size=(N, D))
    y = gen.integers(0, 3, N)
    xv = gen.normal(size=(M, D))
    yv = gen.integers(0, 3, M)
    return x, y, xv, yv


def _chunked(x, y, n_chunks):
    rows = -(-x.shape[0] // n_chunks)
    xd = da.from_array(x, chunks=(rows, x.shape[1]))
    assert xd.numblocks[0] == n_chunks
    return xd, da.from_array(y, chunks=rows)


def _ledger(tmp_path, name="d", epsilon=50.0):
    ledger = Ledger(str(tmp_path / "ledger.db"), record=())
    ledger.set_budget(name, epsilon=epsilon, delta=1e-4, accountant="rdp")
    return ledger


def _oracle_dp_values(x, y, xv, yv, noisy, tau, n_classes):
    """Values of a q = 1 release recomputed by brute force from the released noisy counts."""
    out = np.zeros(x.shape[0])
    for v in range(xv.shape[0]):
        inball = np.linalg.norm(x - xv[v], axis=1) <= tau
        ca, cm = noisy[v]
        a, _ = tknn_point_values([max(ca, 1)], [cm], n_classes)
        _, b = tknn_point_values([ca], [max(cm, 1)], n_classes)
        out += np.where(inball, np.where(y == yv[v], a[0], b[0]), 0.0)
    return out / xv.shape[0]


@pytest.mark.parametrize("n_chunks", [1, 7, 64])
def test_counts_and_values_equal_in_memory(client, data, n_chunks):
    x, y, xv, yv = data
    xd, yd = _chunked(x, y, n_chunks)
    counts = dask_neighbor_counts(xd, yd, xv, yv, tau=TAU, split_every=3)
    np.testing.assert_array_equal(counts, neighbor_counts(x, y, xv, yv, tau=TAU))
    values = dask_tknn_shapley(xd, yd, xv, yv, tau=TAU)
    assert isinstance(values, da.Array) and values.chunks[0] == xd.chunks[0]
    np.testing.assert_allclose(values.compute(), tknn_shapley(x, y, xv, yv, tau=TAU),
                               rtol=1e-12, atol=1e-15)


def test_dp_release_matches_oracle_and_is_chunking_invariant(client, data):
    x, y, xv, yv = data
    results = []
    for n_chunks in (1, 7, 64):
        xd, yd = _chunked(x, y, n_chunks)
        rel = dask_dp_tknn_shapley(xd, yd, xv, yv, tau=TAU, epsilon=2.0, delta=1e-5, rng=11,
                                   accountant="rdp", sampling_rate=1.0)
        results.append((rel.noisy_counts, rel.values.compute()))
        assert rel.seeded and rel.sampling_rate == 1.0
    for counts, values in results[1:]:
        np.testing.assert_array_equal(counts, results[0][0])
        np.testing.assert_allclose(values, results[0][1], rtol=1e-12, atol=1e-15)
    noisy = results[0][0]
    assert np.all(noisy >= 0)
    oracle = _oracle_dp_values(x, y, xv, yv, noisy, TAU, 3)
    np.testing.assert_allclose(results[0][1], oracle, rtol=1e-10, atol=1e-14)


def test_subsampled_counts_shard_additively_and_stay_below_exact(data):
    x, y, xv, yv = data
    whole = shard_counts(x, y, xv, yv, tau=TAU, sampling_rate=0.3, key=123)
    parts = sum(shard_counts(x[a:a + 100], y[a:a + 100], xv, yv, tau=TAU, sampling_rate=0.3,
                             key=123, row0=a) for a in range(0, N, 100))
    np.testing.assert_array_equal(whole, parts)
    exact = neighbor_counts(x, y, xv, yv, tau=TAU)
    assert np.all(whole <= exact)
    # Binomial(exact, 0.3): the total stays within 6 standard deviations (alpha << 1e-6).
    n_in = exact.sum()
    assert abs(whole.sum() - 0.3 * n_in) < 6 * np.sqrt(n_in * 0.3 * 0.7)


def test_dp_guarantee_replays_with_dp_accounting(client, data):
    from dp_accounting import dp_event
    from dp_accounting.pld import pld_privacy_accountant

    x, y, xv, yv = data
    xd, yd = _chunked(x, y, 4)
    rel = dask_dp_tknn_shapley(xd, yd, xv, yv, tau=TAU, epsilon=1.0, delta=1e-5,
                               sampling_rate=0.5, noise="gaussian", n_val_used=10, rng=3,
                               accountant="rdp")
    event = dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(0.5, dp_event.GaussianDpEvent(rel.noise_scale)), 10)
    # A coarse PLD grid is pessimistic, so it is still an upper bound to compare against.
    pld = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-3)
    eps = pld.compose(event).get_epsilon(1e-5)
    assert eps <= 1.0 + 1e-3
    assert rel.noisy_counts.shape == (10, 2) and rel.validation_indices.shape == (10,)
    assert rel.values.compute().shape == (N,)


def _load_or_die(block, marker):
    """Kill the worker process the first time this chunk is loaded."""
    if not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write("died once")
        os._exit(1)
    return block


def test_worker_killed_mid_computation_changes_nothing(client, data, tmp_path, monkeypatch):
    x, y, xv, yv = data
    xd, yd = _chunked(x, y, 8)
    ledger = _ledger(tmp_path)
    draws = []
    real = noise_module.sample_discrete_gaussian

    def counting(*args, **kwargs):
        draws.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(noise_module, "sample_discrete_gaussian", counting)
    reference = dask_dp_tknn_shapley(xd, yd, xv, yv, tau=TAU, epsilon=2.0, delta=1e-5, rng=5)
    ref_values = reference.values.compute()
    assert len(draws) == 1

    marker = str(tmp_path / "died")
    pieces = [da.from_delayed(dask.delayed(_load_or_die, pure=False)(x[i:i + 80], marker),
                              shape=(80, D), dtype=float) for i in range(0, N, 80)]
    fragile = da.concatenate(pieces)
    draws.clear()
    rel = dask_dp_tknn_shapley(fragile, yd, xv, yv, tau=TAU, epsilon=2.0, delta=1e-5, rng=5,
                               ledger=ledger, dataset="d")
    assert os.path.exists(marker), "no worker died: the test did not exercise a retry"
    assert len(draws) == 1
    assert len(ledger.history("d")) == 1
    np.testing.assert_array_equal(rel.noisy_counts, reference.noisy_counts)
    np.testing.assert_allclose(rel.values.compute(), ref_values, rtol=1e-12, atol=1e-15)
    assert len(draws) == 1 and len(ledger.history("d")) == 1


def test_shard_files_npy_and_parquet(client, data, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, y, xv, yv = data
    paths_npy, paths_pq = [], []
    for i, (a, b) in enumerate([(0, 200), (200, 450), (450, N)]):
        p = tmp_path / f"s{i}.npy"
        np.save(p, np.column_stack([x[a:b], y[a:b]]))
        paths_npy.append(str(p))
        q = tmp_path / f"s{i}.parquet"
        cols = {f"f{j}": x[a:b, j] for j in range(D)}
        cols["label"] = y[a:b]
        pq.write_table(pa.table(cols), q)
        paths_pq.append(str(q))
    expected = neighbor_counts(x, y, xv, yv, tau=TAU)
    np.testing.assert_array_equal(dask_neighbor_counts(paths_npy, None, xv, yv, tau=TAU),
                                  expected)
    np.testing.assert_array_equal(
        dask_neighbor_counts(paths_pq, None, xv, yv, tau=TAU, label_column="label"), expected)
    xs, ys = shards_to_dask(paths_npy)
    assert xs.numblocks == (3, 1) and xs.shape == (N, D) and ys.shape == (N,)
    values = dask_tknn_shapley(paths_pq, None, xv, yv, tau=TAU, label_column="label")
    np.testing.assert_allclose(values.compute(), tknn_shapley(x, y, xv, yv, tau=TAU),
                               rtol=1e-12, atol=1e-15)


def test_value_pass_resubmits_no_count_pass_key_with_another_spec(client, data, tmp_path,
                                                                  monkeypatch):
    """Keys the scheduler still holds from the count pass come back with the same task spec.

    The scheduler forgets the count pass's keys only after the client's release reaches it,
    and the value pass may arrive first. A key that then comes back with other dependencies
    makes the scheduler log "Detected different `run_spec`" (a deadlock risk,
    dask/dask#9888). Holding the releases back until the value pass has been submitted makes
    that race certain: with the labels read by a second task per chunk (before the fix)
    this test failed in 5 of 5 runs; without the hold, the bare scenario warned in 10 to 14
    of 16 fresh processes.
    """
    x, y, xv, yv = data
    paths = []
    for i, a in enumerate(range(0, N, 160)):
        paths.append(str(tmp_path / f"s{i}.npy"))
        np.save(paths[-1], np.column_stack([x[a:a + 160], y[a:a + 160]]))
    xs, ys = shards_to_dask(paths)  # from_delayed chunks, as a loader would build them
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    scheduler_log = logging.getLogger("distributed.scheduler")
    assert scheduler_log.isEnabledFor(logging.WARNING)  # else the check below could not fail
    scheduler_log.addHandler(handler)
    held = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with monkeypatch.context() as patch:
                # The scheduler keeps every earlier pass's keys until these are released.
                patch.setattr(distributed.Future, "release", lambda f: held.append(f))
                values = dask_tknn_shapley(xs, ys, xv, yv, tau=TAU)
                rel = dask_dp_tknn_shapley(xs, ys, xv, yv, tau="private", epsilon=2.0,
                                           delta=1e-5, rng=3)
            held_keys = set(client.cluster.scheduler.tasks)
            assert held and any(k in held_keys for k in ys.__dask_keys__())
            np.testing.assert_allclose(values.compute(), tknn_shapley(x, y, xv, yv, tau=TAU),
                                       rtol=1e-12, atol=1e-15)
            assert rel.values.compute().shape == (N,)
    finally:
        scheduler_log.removeHandler(handler)
        for future in held:
            future.release()
    reports = messages + [str(w.message) for w in caught]
    assert not [r for r in reports if "run_spec" in r], reports[:1]


@pytest.mark.parametrize("how", ["mask", "explicit"])
def test_chunks_without_rows_contribute_nothing(client, data, how):
    """A chunk with no rows (a boolean mask can leave one) is accepted and adds nothing.

    Before, every worker refused such a chunk ("'x_train' ... must be a non-empty 2-D array")
    although the array as a whole was not empty.
    """
    from privval.private import dp_tknn_shapley

    x, y, xv, yv = data
    keep = np.ones(N, dtype=bool)
    keep[80:160] = False  # exactly the second chunk of 80 rows
    if how == "mask":  # unknown chunk sizes, one of them 0 once computed
        mask = da.from_array(keep, chunks=80)
        xd, yd = da.from_array(x, chunks=(80, D))[mask], da.from_array(y, chunks=80)[mask]
    else:
        rows = (80, 0, 240, 0, int(keep.sum()) - 320)
        xd, yd = da.from_array(x[keep], chunks=(rows, D)), da.from_array(y[keep], chunks=(rows,))
    xk, yk = x[keep], y[keep]
    np.testing.assert_array_equal(dask_neighbor_counts(xd, yd, xv, yv, tau=TAU),
                                  neighbor_counts(xk, yk, xv, yv, tau=TAU))
    values = dask_tknn_shapley(xd, yd, xv, yv, tau=TAU).compute()
    np.testing.assert_allclose(values, tknn_shapley(xk, yk, xv, yv, tau=TAU),
                               rtol=1e-12, atol=1e-15)
    rel = dask_dp_tknn_shapley(xd, yd, xv, yv, tau=TAU, **_SAME_SEED)
    expected = dp_tknn_shapley(xk, yk, xv, yv, tau=TAU, **_SAME_SEED)
    np.testing.assert_array_equal(rel.noisy_counts, expected.noisy_counts)
    np.testing.assert_allclose(rel.values.compute(), expected.values, rtol=1e-12, atol=1e-15)


def test_bad_input_fails_before_anything_is_charged(data, tmp_path):
    x, y, xv, yv = data
    ledger = _ledger(tmp_path)
    xd, yd = _chunked(x, y, 2)
    with dask.config.set(scheduler="synchronous"):
        with pytest.raises(ValueError, match="'x_val' parameter of dask_dp_tknn_shapley"):
            dask_dp_tknn_shapley(xd, yd, xv[:, :2], yv, tau=TAU, epsilon=1.0, delta=1e-5,
                                 ledger=ledger, dataset="d")
        with pytest.raises(ValueError, match="'y_train'"):
            dask_neighbor_counts(xd, yd[:10], xv, yv, tau=TAU)
        with pytest.raises(ValueError, match="'epsilon'"):
            dask_dp_tknn_shapley(xd, yd, xv, yv, tau=TAU, epsilon=0.0, delta=1e-5,
                                 ledger=ledger, dataset="d")
        with pytest.raises(ValueError, match="'split_every'"):
            dask_neighbor_counts(xd, yd, xv, yv, tau=TAU, split_every=1)
        with pytest.raises(ValueError, match="'y_train'"):
            dask_neighbor_counts([str(tmp_path / "a.npy")], yd, xv, yv, tau=TAU)
        with pytest.raises(ValueError, match="does not exist"):
            dask_neighbor_counts([str(tmp_path / "a.npy")], None, xv, yv, tau=TAU)
        # Mixed object labels: privval's own message from the count task (the label set is
        # read in the same task, after the check, so numpy's sort error cannot come first).
        mixed = da.from_array(np.array([1, "a"] * (N // 2), dtype=object), chunks=100)
        with pytest.raises(TypeError, match="'y_train'.*integer or string labels"):
            dask_tknn_shapley(da.from_array(x, chunks=(100, D)), mixed, xv, yv.astype(str),
                              tau=TAU)
        bad = x.copy()
        bad[3, 1] = np.nan
        with pytest.raises(ValueError, match="finite"):
            dask_dp_tknn_shapley(da.from_array(bad, chunks=(100, D)), yd, xv, yv, tau=TAU,
                                 epsilon=1.0, delta=1e-5, ledger=ledger, dataset="d")
    assert ledger.history("d") == []


def test_refused_charge_releases_nothing(data, tmp_path, monkeypatch):
    from accountants.ledger import BudgetExceededError

    x, y, xv, yv = data
    ledger = _ledger(tmp_path, epsilon=0.5)
    draws = []
    monkeypatch.setattr(noise_module, "sample_discrete_gaussian",
                        lambda *a, **k: draws.append(1) or np.zeros(a[1], dtype=np.int64))
    xd, yd = _chunked(x, y, 3)
    with dask.config.set(scheduler="synchronous"), pytest.raises(BudgetExceededError):
        dask_dp_tknn_shapley(xd, yd, xv, yv, tau=TAU, epsilon=1.0, delta=1e-5, ledger=ledger,
                             dataset="d", accountant="rdp")
    assert draws == [] and ledger.history("d") == []


def test_missing_dask_names_the_extra(monkeypatch, data):
    x, y, xv, yv = data
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"privval\[dask\]"):
        dask_neighbor_counts(x, y, xv, yv, tau=TAU)


# --------------------------------------------------------------------------- in-memory options
# Both paths draw the validation choice, the EVR seed, the selection noise and the count noise
# from one NoiseSource in the same order, and q = 1 needs no subsample: for an equal seed the
# whole release must be identical, noise included.
_SAME_SEED = {"epsilon": 2.0, "delta": 1e-5, "rng": 11, "accountant": "rdp",
              "sampling_rate": 1.0}


@pytest.mark.parametrize("options", [
    {"tau": TAU, "max_contributions": 3},
    {"tau": "auto"},
    {"tau": "private", "n_val_used": 16},
    {"tau": "private", "max_contributions": 2, "noise": "gaussian", "reduce": "sum"},
    {"tau": TAU, "accountant": "evr", "delta": 1e-3},
], ids=["max_contributions", "auto", "private", "private+bound", "evr"])
def test_new_options_equal_the_in_memory_release_for_an_equal_seed(client, data, tmp_path,
                                                                    options):
    from privval.private import dp_tknn_shapley

    x, y, xv, yv = data
    kwargs = dict(_SAME_SEED, **options)
    ledger = Ledger(str(tmp_path / "evr.db"), record=())
    ledger.set_budget("d", epsilon=50.0, delta=1e-2)
    expected = dp_tknn_shapley(x, y, xv, yv, **kwargs)
    xd, yd = _chunked(x, y, 7)
    # chunk_size = 30 rows per tile: every chunk is bounded/voted in several tiles.
    rel = dask_dp_tknn_shapley(xd, yd, xv, yv, chunk_size=M * 30, ledger=ledger, dataset="d",
                               **kwargs)
    assert rel.tau == expected.tau and rel.tau_source == expected.tau_source
    assert rel.tau_source == ("given" if not isinstance(options["tau"], str) else options["tau"])
    assert rel.max_contributions == options.get("max_contributions")
    np.testing.assert_array_equal(rel.validation_indices, expected.validation_indices)
    np.testing.assert_array_equal(rel.noisy_counts, expected.noisy_counts)
    np.testing.assert_allclose(rel.values.compute(), expected.values, rtol=1e-12, atol=1e-15)
    assert rel.guarantee == expected.guarantee and rel.noise_scale == expected.noise_scale
    # The noise was really drawn (the equality is not that of two noiseless runs).
    exact = neighbor_counts(x, y, xv[rel.validation_indices], yv[rel.validation_indices],
                            tau=rel.tau)
    assert not np.array_equal(rel.noisy_counts, exact)
    (record,) = ledger.history("d")
    if options.get("accountant") == "evr":
        assert rel.guarantee.accountant == "evr" and rel.guarantee.certificate.accepted
        assert record.certificate is not None and record.certificate["accepted"]
    ledger.close()


def test_max_contributions_counts_and_values_match_brute_force(client, data):
    """Noise-free oracle (ε = 5000, Gaussian σ ~ 0.05): kept sets from explicit distances."""
    x, y, xv, yv = data
    k = 2
    dist = np.linalg.norm(xv[:, None, :] - x[None, :, :], axis=2)
    keep = np.zeros_like(dist, dtype=bool)
    for j in range(N):
        balls = [v for v in np.argsort(dist[:, j], kind="stable") if dist[v, j] <= TAU][:k]
        keep[balls, j] = True
    assert (dist <= TAU).sum(axis=0).max() > k  # the bound binds for some records
    match = yv[:, None] == y[None, :]
    counts = np.stack([(keep & match).sum(1), (keep & ~match).sum(1)], axis=1)
    for n_chunks in (1, 64):
        xd, yd = _chunked(x, y, n_chunks)
        rel = dask_dp_tknn_shapley(xd, yd, xv, yv, tau=TAU, epsilon=5e3, delta=1e-5, rng=1,
                                   noise="gaussian", accountant="rdp", sampling_rate=1.0,
                                   max_contributions=k, chunk_size=M * 7)
        np.testing.assert_array_equal(rel.noisy_counts, counts)
        oracle = np.zeros(N)
        for v in range(M):
            a, _ = tknn_point_values([counts[v, 0]], [counts[v, 1]], 3)
            _, b = tknn_point_values([counts[v, 0]], [counts[v, 1]], 3)
            oracle += np.where(keep[v], np.where(match[v], a[0], b[0]), 0.0)
        np.testing.assert_allclose(rel.values.compute(), oracle / M, rtol=1e-10, atol=1e-14)


def test_bounded_subsampled_shard_counts_add_up_and_respect_the_bound(data):
    from privval.distributed import shard_values

    x, y, xv, yv = data
    k = 2
    whole = shard_counts(x, y, xv, yv, tau=TAU, sampling_rate=0.4, key=99, max_contributions=k)
    parts = sum(shard_counts(x[a:a + 90], y[a:a + 90], xv, yv, tau=TAU, sampling_rate=0.4,
                             key=99, row0=a, max_contributions=k) for a in range(0, N, 90))
    np.testing.assert_array_equal(whole, parts)
    assert np.all(whole <= shard_counts(x, y, xv, yv, tau=TAU, max_contributions=k))
    # One record alone: it counts in at most k balls, and its value lives only in those.
    for j in range(0, N, 37):
        own = shard_counts(x[j:j + 1], y[j:j + 1], xv, yv, tau=TAU, max_contributions=k)
        assert own.sum() <= k
        vals = shard_values(x[j:j + 1], y[j:j + 1], xv, yv, np.ones((M, 2), dtype=np.int64),
                            tau=TAU, n_classes=3, sampling_rate=1.0, max_contributions=k)
        assert (vals[0] == 0.0) == (own.sum() == 0)


def test_vote_histograms_of_chunks_add_up_to_the_in_memory_histogram(data):
    from privval.distributed import _vote_chunk
    from privval.private import _encode, _tau_grid, _vote_histogram

    x, y, xv, yv = data
    grid = _tau_grid(xv, "euclidean")
    codes_t, codes_v, c = _encode(y, yv, None, "t")
    expected = _vote_histogram(x, codes_t, xv, codes_v, c, grid, "euclidean", 2**20)
    assert expected.sum() == N and np.count_nonzero(expected) > 1
    for rows in (N, 91, 10):
        parts = sum(_vote_chunk(x[a:a + rows], y[a:a + rows], x_val=xv, y_val=yv, n_classes=c,
                                grid=grid, metric="euclidean", budget=M * 7, caller="t")[0]
                    for a in range(0, N, rows))
        np.testing.assert_array_equal(parts, expected)


def test_bad_new_options_fail_before_anything_is_charged(data, tmp_path, monkeypatch):
    from accountants.ledger import BudgetExceededError

    x, y, xv, yv = data
    ledger = _ledger(tmp_path)
    xd, yd = _chunked(x, y, 2)
    base = {"epsilon": 1.0, "delta": 1e-5, "ledger": ledger, "dataset": "d"}
    with dask.config.set(scheduler="synchronous"):
        for change, fragment in [
            ({"tau": TAU, "max_contributions": 0}, "'max_contributions' parameter of dask_dp"),
            ({"tau": TAU, "max_contributions": 1.5}, "'max_contributions'"),
            ({"tau": "best"}, "'tau' parameter of dask_dp_tknn_shapley"),
            ({"tau": TAU, "accountant": "mc"}, "'accountant' parameter of dask_dp"),
            ({"tau": "private", "x_val": xv[:1], "y_val": yv[:1]}, "'tau'"),
            ({"tau": "auto", "x_val": xv[:1], "y_val": yv[:1]}, "'x_val'"),
        ]:
            kwargs = {**base, "x_val": xv, "y_val": yv, **change}
            with pytest.raises((ValueError, TypeError), match=fragment):
                dask_dp_tknn_shapley(xd, yd, **kwargs)
        assert ledger.history("d") == []
        # A refused charge with tau="private" draws no selection noise and no count noise.
        small = Ledger(str(tmp_path / "small.db"), record=())
        small.set_budget("d", epsilon=0.5, delta=1e-4, accountant="rdp")
        draws = []
        monkeypatch.setattr(noise_module, "sample_discrete_gaussian",
                            lambda *a, **k: draws.append(1) or np.zeros(a[1], dtype=np.int64))
        with pytest.raises(BudgetExceededError):
            dask_dp_tknn_shapley(xd, yd, xv, yv, tau="private", max_contributions=2,
                                 epsilon=1.0, delta=1e-5, ledger=small, dataset="d",
                                 accountant="rdp")
        assert draws == [] and small.history("d") == []
