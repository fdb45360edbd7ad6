"""Read and write MATLAB .mat files: v5 through scipy.io, v7.3 (HDF5) through h5py."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io

from ..errors import DataError

MAT_FORMATS = ("v5", "v7.3")

# MATLAB class names for the numeric dtypes we write into v7.3 files
_MATLAB_CLASS = {
    np.dtype("float64"): "double", np.dtype("float32"): "single",
    np.dtype("uint8"): "uint8", np.dtype("uint16"): "uint16", np.dtype("uint32"): "uint32",
    np.dtype("uint64"): "uint64", np.dtype("int8"): "int8", np.dtype("int16"): "int16",
    np.dtype("int32"): "int32", np.dtype("int64"): "int64", np.dtype("bool"): "logical",
}


def read_mat(path: str | Path, keys: Collection[str] | None = None) -> dict[str, Any]:
    """Read the variables of a .mat file (v5 or v7.3) in MATLAB's orientation.

    Args:
        path: the .mat file.
        keys: read only these variables (those the file has); None reads every one. A feature
            file's ``image_files`` cell is one string per image: in a v7.3 file each is an HDF5
            object of its own (16 s to read for AWA2's 37322 images on 2 cores).
    Returns:
        name -> value. Numeric arrays keep MATLAB's shape (a (D, N) matrix comes back (D, N));
        cell arrays of strings come back as object arrays of str.
    Raises:
        DataError: the file is missing or is not a readable MAT-file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the dataset directory")
    if h5py.is_hdf5(path):
        return _read_h5(path, keys)
    try:
        raw = scipy.io.loadmat(path, variable_names=None if keys is None else list(keys))
    except Exception as exc:  # scipy raises many types (ValueError, MatReadError, TypeError)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a readable MAT-file ({msg}); re-download or regenerate it") from exc
    return {k: v for k, v in raw.items() if not k.startswith("__")}


def _read_h5(path: Path, keys: Collection[str] | None) -> dict[str, Any]:
    try:
        with h5py.File(path, "r") as f:
            return {k: _h5_value(f, f[k]) for k in f.keys() if not k.startswith("#") and (keys is None or k in keys)}
    except DataError:
        raise
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a readable v7.3 MAT-file ({msg}); re-download or regenerate it") from exc


def _h5_value(f: h5py.File, obj: Any) -> Any:
    if isinstance(obj, h5py.Group):
        return None  # structs are not used by xlsa17 files
    mclass = obj.attrs.get("MATLAB_class", b"")
    mclass = mclass.decode() if isinstance(mclass, bytes) else str(mclass)
    data = obj[()]
    if mclass == "cell":
        # h5py gives the transposed ref array; each ref points at one MATLAB value
        refs = np.asarray(data).T
        out = np.empty(refs.shape, dtype=object)
        for idx in np.ndindex(refs.shape):
            out[idx] = _h5_value(f, f[refs[idx]])
        return out
    if mclass == "char":
        codes = np.asarray(data).T.ravel(order="F")
        return "".join(chr(c) for c in codes)
    arr = np.asarray(data)
    # h5py reports dims in reverse order; transpose back to MATLAB's (rows, cols)
    return np.ascontiguousarray(arr.T) if arr.ndim >= 2 else arr


def write_mat(path: str | Path, variables: dict[str, Any], *, mat_format: str = "v5") -> None:
    """Write variables to a .mat file.

    Args:
        path: destination file (overwritten).
        variables: name -> numpy array (MATLAB orientation) or, for a cell of strings, a list of str.
        mat_format: "v5" (scipy.io) or "v7.3" (HDF5 with a MATLAB header).
    Raises:
        DataError: unknown format.
    """
    path = Path(path)
    if mat_format == "v5":
        conv = {k: (_cellstr(v) if isinstance(v, list) else v) for k, v in variables.items()}
        scipy.io.savemat(path, conv, do_compression=False, oned_as="column")
        return
    if mat_format != "v7.3":
        raise DataError(f"{path}: mat_format={mat_format!r} is unknown; use one of {MAT_FORMATS}")
    with h5py.File(path, "w", userblock_size=512, libver="earliest") as f:
        for name, value in variables.items():
            if isinstance(value, list):
                _h5_write_cellstr(f, name, value)
                continue
            arr = np.asarray(value)
            if arr.ndim == 1:
                arr = arr[:, None]  # MATLAB has no 1-D arrays: store as a column
            # MATLAB stores column-major: the HDF5 dataset holds the transpose
            ds = f.create_dataset(name, data=np.ascontiguousarray(arr.T), track_times=False)
            ds.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS[arr.dtype])
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: zsl-search HDF5 schema 1.00 ."
    header = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as fh:
        fh.write(header)


def _cellstr(names: list[str]) -> np.ndarray:
    cell = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        cell[i, 0] = np.array([n])
    return cell


def _h5_write_cellstr(f: h5py.File, name: str, names: list[str]) -> None:
    refs_group = f.require_group("#refs#")
    refs = np.empty((1, len(names)), dtype=h5py.ref_dtype)  # transpose of MATLAB (n, 1)
    for i, s in enumerate(names):
        codes = np.array([[ord(c) for c in s]], dtype=np.uint16).T  # (len, 1) = transpose of (1, len)
        ds = refs_group.create_dataset(f"{name}_{i}", data=codes, track_times=False)
        ds.attrs["MATLAB_class"] = np.bytes_("char")
        ds.attrs["MATLAB_int_decode"] = np.int32(2)
        refs[0, i] = ds.ref
    cell = f.create_dataset(name, data=refs, track_times=False)
    cell.attrs["MATLAB_class"] = np.bytes_("cell")


def cellstr_to_list(value: Any) -> list[str] | None:
    """Turn a MATLAB cell of strings (as read by `read_mat`) into a list of str; None if not one."""
    if value is None:
        return None
    try:
        out = []
        for item in np.asarray(value, dtype=object).ravel(order="F"):
            while isinstance(item, np.ndarray):
                if item.size != 1:
                    item = "".join(str(x) for x in item.ravel())
                    break
                item = item.ravel()[0]
            out.append(str(item))
        return out
    except Exception:
        return None


