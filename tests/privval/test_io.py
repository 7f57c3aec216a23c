"""Readers for labelled feature files: every format gives the same arrays, bad files clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from privval.io import DataFileError, read_labeled, value_ranks, write_values

X = np.array([[0.5, 1.0], [2.0, -3.5], [1e-3, 4.0]])
Y = np.array([0, 1, 1])


def _write_csv(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_every_format_reads_the_same_table(tmp_path) -> None:
    csv_path = _write_csv(tmp_path / "t.csv", "a,b,y\n0.5,1,0\n2,-3.5,1\n0.001,4,1\n")
    tsv_path = _write_csv(tmp_path / "t.tsv", "a\tlabel\tb\n0.5\t0\t1\n2\t1\t-3.5\n0.001\t1\t4\n")
    npy_path = tmp_path / "t.npy"
    np.save(npy_path, np.column_stack([X, Y]))
    npz_xy = tmp_path / "xy.npz"
    np.savez(npz_xy, x=X, y=Y)
    npz_single = tmp_path / "single.npz"
    np.savez(npz_single, np.column_stack([Y, X]))
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq_path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"f0": X[:, 0], "f1": X[:, 1], "target": Y}), pq_path)

    cases = [
        (csv_path, None), (tsv_path, "label"), (npy_path, None), (npz_xy, None),
        (npz_single, "0"), (pq_path, "target"),
    ]
    for path, label in cases:
        data = read_labeled(path, label_column=label)
        np.testing.assert_array_equal(data.x, X, err_msg=str(path))
        np.testing.assert_array_equal(data.y, Y, err_msg=str(path))
        assert data.y.dtype == np.int64
        assert data.n_samples == 3
    assert read_labeled(csv_path).feature_names == ("a", "b")
    assert read_labeled(npy_path).feature_names == ("0", "1")


def test_string_labels_stay_strings_and_integral_floats_become_ints(tmp_path) -> None:
    p = _write_csv(tmp_path / "s.csv", "x,y\n1,cat\n2,dog\n3, cat\n")
    assert read_labeled(p).y.tolist() == ["cat", "dog", "cat"]
    p = _write_csv(tmp_path / "f.csv", "x,y\n1,1.0\n2,2.0\n")
    data = read_labeled(p)
    assert data.y.dtype == np.int64 and data.y.tolist() == [1, 2]


@pytest.mark.parametrize(
    ("name", "text", "label", "fragments"),
    [
        ("nolabel.csv", "a,b\n1,2\n", "y", ["no label column 'y'", "'a', 'b'", "--label-column"]),
        ("text.csv", "a,y\n1,0\nred,1\n", None, ["column 'a', row 2", "'red' is not a number", "numeric"]),
        ("nan.csv", "a,y\n1,0\nnan,1\n", None, ["column 'a', row 2", "finite"]),
        ("empty_cell.csv", "a,b,y\n1,,0\n", None, ["column 'b', row 1", "missing"]),
        ("inf.csv", "a,y\ninf,0\n", None, ["row 1", "finite"]),
        ("nolabelvalue.csv", "a,y\n1,\n", None, ["label column 'y', row 1", "missing"]),
        ("ragged.csv", "a,y\n1,0,5\n", None, ["line 2", "3 fields", "header has 2"]),
        ("header_only.csv", "a,y\n", None, ["no data rows"]),
        ("blank.csv", "", None, ["is empty", "header row"]),
        ("only_label.csv", "y\n1\n", None, ["only the label column", "feature"]),
        ("dup.csv", "a,a,y\n1,2,0\n", None, ["repeats the column", "'a'"]),
        ("data.xlsx", "whatever", None, ["unsupported suffix '.xlsx'", ".csv", ".npz"]),
    ],
)
def test_bad_tables_name_the_problem(tmp_path, name, text, label, fragments) -> None:
    p = _write_csv(tmp_path / name, text)
    with pytest.raises(DataFileError) as info:
        read_labeled(p, label_column=label)
    message = str(info.value)
    assert str(p) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_file_and_directory(tmp_path) -> None:
    with pytest.raises(DataFileError, match="does not exist"):
        read_labeled(tmp_path / "absent.csv")
    with pytest.raises(DataFileError, match="is a directory"):
        read_labeled(tmp_path)
    assert issubclass(DataFileError, ValueError)


def test_bad_arrays_name_the_problem(tmp_path) -> None:
    p = tmp_path / "m.npy"
    np.save(p, np.column_stack([X, Y]))
    with pytest.raises(DataFileError, match="integer index"):
        read_labeled(p, label_column="y")
    with pytest.raises(DataFileError, match=r"out of range; use a value in \[-3, 2\]"):
        read_labeled(p, label_column=3)
    np.save(p, np.array([[1.0, np.nan, 0.0]]))
    with pytest.raises(DataFileError, match="column '1', row 1.*finite"):
        read_labeled(p)
    np.save(p, np.arange(4.0))
    with pytest.raises(DataFileError, match="must be 2-D"):
        read_labeled(p)
    np.save(p, np.array([["a", "0"]]))
    with pytest.raises(DataFileError, match="not numbers"):
        read_labeled(p)
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match="Python objects"):
        read_labeled(p)
    p.write_bytes(b"not an array")
    with pytest.raises(DataFileError, match="not a readable .npy"):
        read_labeled(p)

    z = tmp_path / "z.npz"
    np.savez(z, feats=X, labels=Y)
    with pytest.raises(DataFileError, match="no label array 'y'.*'feats', 'labels'"):
        read_labeled(z)
    np.testing.assert_array_equal(read_labeled(z, label_column="labels").x, X)
    np.savez(z, a=X, b=X, y=Y)
    with pytest.raises(DataFileError, match="Name it 'x'"):
        read_labeled(z)
    np.savez(z, x=X, y=Y[:2])
    with pytest.raises(DataFileError, match="one entry per row"):
        read_labeled(z)


def test_write_values_ranks_from_most_valuable(tmp_path) -> None:
    values = np.array([0.2, -1.0, 0.2, 3.0])
    np.testing.assert_array_equal(value_ranks(values), [2, 4, 3, 1])
    out = write_values(tmp_path / "v.csv", values)
    lines = out.read_text().splitlines()
    assert lines[0] == "index,value,rank"
    assert [line.split(",") for line in lines[1:]] == [
        ["0", "0.2", "2"], ["1", "-1.0", "4"], ["2", "0.2", "3"], ["3", "3.0", "1"],
    ]
    rows = json.loads(write_values(tmp_path / "v.json", values).read_text())
    assert rows[3] == {"index": 3, "value": 3.0, "rank": 1}
    with pytest.raises(DataFileError, match="does not exist"):
        write_values(tmp_path / "nodir" / "v.csv", values)


def test_parquet_nulls_and_text_are_named(tmp_path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    p = tmp_path / "m.parquet"
    pq.write_table(pa.table({"a": [1.0, None, 2.0], "y": [0, 1, 1]}), p)
    with pytest.raises(DataFileError, match="column 'a', row 2: the feature is missing"):
        read_labeled(p)
    pq.write_table(pa.table({"a": [1.0, 2.0], "b": ["x", "y"], "y": [0, 1]}), p)
    with pytest.raises(DataFileError, match="column 'b', row 1: 'x' is not a number"):
        read_labeled(p)
    pq.write_table(pa.table({"a": [1.0, 3.0, 2.0], "y": ["c", None, "d"]}), p)
    with pytest.raises(DataFileError, match="label column 'y', row 2: the label is missing"):
        read_labeled(p)
    p.write_bytes(b"PAR1 but not really")
    with pytest.raises(DataFileError, match="not a readable Parquet file"):
        read_labeled(p)
