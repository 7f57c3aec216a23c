"""Read labelled feature tables from CSV, Parquet, ``.npy`` and ``.npz`` files; write values.

The command line and the notebooks read data through :func:`read_labeled`, so every file format
gets the same checks and the same error messages: a missing file, an unknown label column, a
non-numeric or non-finite feature, or an empty table raises :class:`DataFileError` (a
``ValueError``) whose message names the file, the column or row at fault, and what to do.

Formats
-------
- **CSV** (``.csv``, ``.tsv``, ``.txt``): a header row with column names; every column other than
  the label column is a numeric feature. Read with the standard library (no pandas needed).
- **Parquet** (``.parquet``, ``.pq``): same layout; needs ``pyarrow``.
- **.npy**: one 2-D numeric array; the label column is an integer index (default ``-1``, the
  last column).
- **.npz**: either arrays named ``x`` (or ``X``) and ``y`` (the label array's name is the label
  column, default ``y``), or a single 2-D array read like a ``.npy`` file.

Labels are returned as ``int64`` when every label is an integer (``"3"``, ``3.0``), otherwise as
strings; the valuation functions accept both.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["SUPPORTED_SUFFIXES", "DataFileError", "LabeledData", "read_labeled", "value_ranks", "write_values"]

_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}
_PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED_SUFFIXES = (*_CSV_SUFFIXES, *_PARQUET_SUFFIXES, ".npy", ".npz")


class DataFileError(ValueError):
    """A data file cannot be used as given; the message says which file and what to fix."""


@dataclass(frozen=True)
class LabeledData:
    """Features and labels read from one file.

    Attributes
    ----------
    x : np.ndarray
        Features, shape (n, d), float64, all finite.
    y : np.ndarray
        Labels, shape (n,), int64 when every label is an integer, otherwise str.
    feature_names : tuple of str
        Column names of the features (``"0"``, ``"1"``, ... for arrays without names).
    label_column : str
        Name (or index, as a string) of the column the labels came from.
    path : str
        The file the data was read from.
    """

    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    label_column: str
    path: str

    @property
    def n_samples(self) -> int:
        """Number of rows."""
        return int(self.x.shape[0])


def read_labeled(path: str | os.PathLike[str], label_column: str | int | None = None) -> LabeledData:
    """Read a feature table with a label column from CSV, Parquet, ``.npy`` or ``.npz``.

    Parameters
    ----------
    path : str or PathLike
        The file. Its suffix chooses the reader (see the module docstring).
    label_column : str, int or None
        The column holding the labels: a name for CSV/Parquet/.npz (default ``"y"``), an
        integer index (or a string such as ``"-1"``) for ``.npy`` and single-array ``.npz``
        files (default ``-1``, the last column).

    Returns
    -------
    LabeledData
        Finite float64 features and their labels.

    Raises
    ------
    DataFileError
        The file is missing, has an unsupported suffix, cannot be parsed, has no such label
        column, has non-numeric or non-finite features, missing labels, or no rows. The message
        names the file and what to fix.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "t.csv").write_text("a,b,y\\n0.5,1,0\\n2,3.5,1\\n")
    >>> data = read_labeled(d / "t.csv", label_column="y")
    >>> data.x.shape, data.y.tolist()
    ((2, 2), [0, 1])
    """
    p = Path(path)
    if not p.exists():
        raise DataFileError(f"Data file {str(p)!r} does not exist. Check the path (relative paths "
                            f"are resolved from {os.getcwd()!r}).")
    if p.is_dir():
        raise DataFileError(f"Data file {str(p)!r} is a directory. Pass a CSV, Parquet, .npy or "
                            f".npz file instead.")
    suffix = p.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        names, columns = _read_csv(p, _CSV_SUFFIXES[suffix])
        return _from_columns(p, names, columns, "y" if label_column is None else str(label_column))
    if suffix in _PARQUET_SUFFIXES:
        names, columns = _read_parquet(p)
        return _from_columns(p, names, columns, "y" if label_column is None else str(label_column))
    if suffix == ".npy":
        return _from_matrix(p, _load_npy(p), label_column)
    if suffix == ".npz":
        return _read_npz(p, label_column)
    raise DataFileError(
        f"Data file {str(p)!r} has the unsupported suffix {p.suffix!r}. Use one of "
        f"{', '.join(SUPPORTED_SUFFIXES)}."
    )


def write_values(path: str | os.PathLike[str], values: np.ndarray) -> Path:
    """Write one row per training record: its index, value and rank.

    Rank 1 is the most valuable record; ties keep index order. A ``.json`` suffix writes a JSON
    list of objects, anything else writes CSV with the header ``index,value,rank``.

    Parameters
    ----------
    path : str or PathLike
        Output file; its parent directory must exist.
    values : np.ndarray
        Values, shape (N,).

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    DataFileError
        The parent directory does not exist or the file cannot be written.

    Example
    -------
    >>> import tempfile, pathlib
    >>> out = write_values(pathlib.Path(tempfile.mkdtemp()) / "v.csv", np.array([0.1, -0.2, 0.3]))
    >>> out.read_text().splitlines()[1]
    '0,0.1,2'
    """
    p = Path(path)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    ranks = value_ranks(values)
    if not p.parent.exists():
        raise DataFileError(f"Cannot write {str(p)!r}: the directory {str(p.parent)!r} does not "
                            f"exist. Create it or choose another --out path.")
    try:
        if p.suffix.lower() == ".json":
            rows = [{"index": i, "value": float(v), "rank": int(r)}
                    for i, (v, r) in enumerate(zip(values, ranks))]
            p.write_text(json.dumps(rows) + "\n", encoding="utf-8")
        else:
            with p.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["index", "value", "rank"])
                for i, (v, r) in enumerate(zip(values, ranks)):
                    writer.writerow([i, repr(float(v)), int(r)])
    except OSError as exc:
        raise DataFileError(f"Cannot write {str(p)!r}: {exc.strerror or exc}. Choose a writable "
                            f"--out path.") from exc
    return p


def value_ranks(values: np.ndarray) -> np.ndarray:
    """Rank values from 1 (highest) to N; equal values keep index order."""
    order = np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")
    ranks = np.empty(order.size, dtype=np.int64)
    ranks[order] = np.arange(1, order.size + 1)
    return ranks


def _read_csv(p: Path, delimiter: str) -> tuple[list[str], list[list[str]]]:
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh, delimiter=delimiter) if row]
    except UnicodeDecodeError as exc:
        raise DataFileError(f"Data file {str(p)!r} is not UTF-8 text. Save it as UTF-8 CSV, or "
                            f"use Parquet or .npy.") from exc
    except csv.Error as exc:
        raise DataFileError(f"Data file {str(p)!r} is not valid CSV ({exc}). Fix the file.") from exc
    if not rows:
        raise DataFileError(f"Data file {str(p)!r} is empty. It needs a header row with column "
                            f"names and at least one data row.")
    header = [name.strip() for name in rows[0]]
    body = rows[1:]
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataFileError(
                f"Data file {str(p)!r}, line {line}: {len(row)} fields where the header has "
                f"{len(header)}. Every row needs one value per column."
            )
    columns = [list(col) for col in zip(*body)] if body else [[] for _ in header]
    return header, columns


def _read_parquet(p: Path) -> tuple[list[str], list[Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataFileError(f"Reading {str(p)!r} needs pyarrow. Install it with "
                            f"'python -m pip install pyarrow', or convert the file to CSV.") from exc
    try:
        table = pq.read_table(p)
    except Exception as exc:  # pyarrow raises several unrelated types for unreadable files
        raise DataFileError(f"Data file {str(p)!r} is not a readable Parquet file ({exc}).") from exc
    # Columns with nulls go through Python lists so that a null stays None ("missing").
    columns = [col.to_pylist() if col.null_count else col.to_numpy(zero_copy_only=False)
               for col in table.columns]
    return list(table.column_names), columns


def _from_columns(p: Path, names: list[str], columns: list[Any], label: str) -> LabeledData:
    if label not in names:
        raise DataFileError(
            f"Data file {str(p)!r} has no label column {label!r}. Its columns are "
            f"{_preview(names)}; pass the right one with --label-column."
        )
    if len(names) != len(set(names)):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataFileError(f"Data file {str(p)!r} repeats the column name(s) {dup}. Give every "
                            f"column a unique name.")
    li = names.index(label)
    n_rows = len(columns[li])
    if n_rows == 0:
        raise DataFileError(f"Data file {str(p)!r} has no data rows. It needs at least one.")
    feature_names = [n for i, n in enumerate(names) if i != li]
    if not feature_names:
        raise DataFileError(f"Data file {str(p)!r} has only the label column {label!r}; add at "
                            f"least one numeric feature column.")
    x = np.empty((n_rows, len(feature_names)), dtype=np.float64)
    j = 0
    for i, col in enumerate(columns):
        if i == li:
            continue
        x[:, j] = _numeric_column(p, names[i], col)
        j += 1
    y = _labels(p, label, columns[li])
    return LabeledData(x=x, y=y, feature_names=tuple(feature_names), label_column=label, path=str(p))


def _numeric_column(p: Path, name: str, col: list[object] | np.ndarray) -> np.ndarray:
    try:  # fast path: numpy parses the whole column at C speed
        fast = np.asarray(col, dtype=np.float64)
    except (ValueError, TypeError):
        fast = None
    if fast is not None and fast.ndim == 1 and np.isfinite(fast).all():
        return fast
    # slow path: find the first bad cell, to name it in the error
    out = np.empty(len(col), dtype=np.float64)
    for row, cell in enumerate(col):
        value = _to_float(cell)
        if value is None:
            raise DataFileError(
                f"Data file {str(p)!r}, column {name!r}, row {row + 1}: {cell!r} is not a number. "
                f"Features must be numeric: encode categorical columns as numbers, or drop the "
                f"column."
            )
        if not math.isfinite(value):
            missing = cell is None or (isinstance(cell, str) and cell.strip() == "")
            raise DataFileError(
                f"Data file {str(p)!r}, column {name!r}, row {row + 1}: the feature is "
                f"{'missing' if missing else value}. Features must be finite: impute or drop "
                f"rows with missing, NaN or infinite values."
            )
        out[row] = value
    return out


def _to_float(cell: object) -> float | None:
    if cell is None:
        return math.nan
    if isinstance(cell, bool):
        return float(cell)
    if isinstance(cell, (int, float, np.integer, np.floating)):
        return float(cell)
    text = str(cell).strip()
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def _labels(p: Path, name: str, col: list[object] | np.ndarray) -> np.ndarray:
    texts: list[str] = []
    ints: list[int] | None = []
    for row, cell in enumerate(col):
        missing = cell is None or (isinstance(cell, (float, np.floating)) and not math.isfinite(cell))
        text = "" if cell is None else str(cell).strip()
        if missing or text == "" or text.lower() == "nan":
            raise DataFileError(
                f"Data file {str(p)!r}, label column {name!r}, row {row + 1}: the label is "
                f"missing. Every row needs a label: drop unlabelled rows first."
            )
        texts.append(text)
        if ints is not None:
            number = _to_float(cell)
            if number is not None and math.isfinite(number) and float(number).is_integer():
                ints.append(int(number))
            else:
                ints = None
    if ints is not None:
        return np.asarray(ints, dtype=np.int64)
    return np.asarray(texts, dtype=str)


def _load_npy(p: Path) -> np.ndarray:
    with p.open("rb") as fh:
        if fh.read(6) != b"\x93NUMPY":
            raise DataFileError(f"Data file {str(p)!r} is not a readable .npy file (no NumPy "
                                f"header). Save arrays with np.save, or use CSV.")
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as exc:
        raise DataFileError(f"Data file {str(p)!r} holds Python objects, which are not loaded for "
                            f"safety. Save a numeric array instead (np.save with a float array).") from exc
    except Exception as exc:
        raise DataFileError(f"Data file {str(p)!r} is not a readable .npy file ({exc}).") from exc


def _read_npz(p: Path, label_column: str | int | None) -> LabeledData:
    with p.open("rb") as fh:
        if fh.read(2) != b"PK":
            raise DataFileError(f"Data file {str(p)!r} is not a readable .npz file (not a zip "
                                f"archive). Save arrays with np.savez, or use CSV.")
    try:
        with np.load(p, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except ValueError as exc:
        raise DataFileError(f"Data file {str(p)!r} holds Python objects or is not a valid .npz "
                            f"archive ({exc}). Save numeric arrays with np.savez.") from exc
    except Exception as exc:
        raise DataFileError(f"Data file {str(p)!r} is not a readable .npz file ({exc}).") from exc
    if len(arrays) == 1 and (label_column is None or _as_index(label_column) is not None):
        return _from_matrix(p, next(iter(arrays.values())), label_column)
    label = "y" if label_column is None else str(label_column)
    if label not in arrays:
        raise DataFileError(
            f"Data file {str(p)!r} has no label array {label!r}. Its arrays are "
            f"{_preview(list(arrays))}; pass the label array's name with --label-column, or save "
            f"the file with np.savez(path, x=features, y=labels)."
        )
    others = [k for k in arrays if k != label]
    feature_key = next((k for k in ("x", "X") if k in arrays), None)
    if feature_key is None:
        if len(others) != 1:
            raise DataFileError(
                f"Data file {str(p)!r}: cannot tell which array holds the features among "
                f"{_preview(others)}. Name it 'x' (np.savez(path, x=features, y=labels))."
            )
        feature_key = others[0]
    x = _feature_matrix(p, arrays[feature_key], what=f"array {feature_key!r}")
    y_raw = np.asarray(arrays[label])
    if y_raw.ndim != 1 or y_raw.shape[0] != x.shape[0]:
        raise DataFileError(
            f"Data file {str(p)!r}: the label array {label!r} has shape {y_raw.shape} but the "
            f"features have {x.shape[0]} rows. Labels must be 1-D with one entry per row."
        )
    y = _labels(p, label, y_raw.tolist())
    names = tuple(str(i) for i in range(x.shape[1]))
    return LabeledData(x=x, y=y, feature_names=names, label_column=label, path=str(p))


def _as_index(label_column: str | int) -> int | None:
    if isinstance(label_column, (int, np.integer)):
        return int(label_column)
    try:
        return int(str(label_column).strip())
    except ValueError:
        return None


def _from_matrix(p: Path, arr: np.ndarray, label_column: str | int | None) -> LabeledData:
    index = -1 if label_column is None else _as_index(label_column)
    if index is None:
        raise DataFileError(
            f"Data file {str(p)!r} is an array without column names, so the label column "
            f"{label_column!r} must be an integer index (e.g. --label-column -1 for the last "
            f"column, 0 for the first)."
        )
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise DataFileError(f"Data file {str(p)!r} holds an array of shape {arr.shape}; it must "
                            f"be 2-D (rows x columns, one of them the label).")
    n_cols = arr.shape[1]
    if not -n_cols <= index < n_cols:
        raise DataFileError(f"Data file {str(p)!r} has {n_cols} columns, so the label column "
                            f"index {index} is out of range; use a value in [{-n_cols}, {n_cols - 1}].")
    if n_cols < 2:
        raise DataFileError(f"Data file {str(p)!r} has a single column; it needs at least one "
                            f"feature column besides the labels.")
    li = index % n_cols
    keep = [j for j in range(n_cols) if j != li]
    x = _feature_matrix(p, arr[:, keep], what="array", column_names=[str(j) for j in keep])
    y = _labels(p, str(li), arr[:, li].tolist())
    return LabeledData(x=x, y=y, feature_names=tuple(str(j) for j in keep), label_column=str(li),
                       path=str(p))


def _feature_matrix(p: Path, arr: np.ndarray, *, what: str,
                    column_names: list[str] | None = None) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataFileError(f"Data file {str(p)!r}: {what} has shape {arr.shape}; features must "
                            f"be 2-D (rows x features).")
    if arr.shape[0] == 0:
        raise DataFileError(f"Data file {str(p)!r} has no data rows. It needs at least one.")
    if arr.shape[1] == 0:
        raise DataFileError(f"Data file {str(p)!r}: {what} has no feature columns.")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataFileError(
            f"Data file {str(p)!r}: {what} has dtype {arr.dtype}, not numbers. Features must be "
            f"numeric: encode categorical columns as numbers."
        )
    x = arr.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        name = column_names[col] if column_names else str(col)
        raise DataFileError(
            f"Data file {str(p)!r}, column {name!r}, row {row + 1}: the feature is {x[row, col]}. "
            f"Features must be finite: impute or drop rows with missing, NaN or infinite values."
        )
    return x


def _preview(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}]"
