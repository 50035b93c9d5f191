"""Values between steps: one file in the library's own format, hashed while written,
read back exactly, memory-mapped where the format allows, the same bytes run after run."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.linear_model import LogisticRegression

from kfg.runtime import step as step_module
from kfg.runtime.step import StepFailed, load_value, run_step, save_value, write_value

HAS_PYARROW = pytest.importorskip("importlib.util").find_spec("pyarrow") is not None
needs_pyarrow = pytest.mark.skipif(not HAS_PYARROW, reason="pyarrow (the parquet extra)")
REPO = Path(__file__).resolve().parents[2]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def frame(rows: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": np.linspace(0.0, 1.0, rows),
            "b": np.arange(rows, dtype="int64"),
            "label": [f"item-{i % 3}" for i in range(rows)],
        }
    )


def assert_same_frame(loaded: Any, value: pd.DataFrame) -> None:
    assert type(loaded) is pd.DataFrame
    pd.testing.assert_frame_equal(
        loaded,
        value,
        check_exact=True,
        check_dtype=True,
        check_index_type=True,
        check_column_type=True,
        check_flags=True,
    )
    assert list(loaded.dtypes) == list(value.dtypes)
    assert loaded.index.dtype == value.index.dtype
    assert loaded.attrs == value.attrs


# --- the file is the value in its own format -------------------------------------------


@needs_pyarrow
def test_a_data_frame_is_a_parquet_file_any_reader_opens(tmp_path: Path) -> None:
    value = frame()
    assert save_value("df", value, str(tmp_path / "df")) == "parquet"
    assert (tmp_path / "df").read_bytes()[:4] == b"PAR1"
    assert_same_frame(pd.read_parquet(tmp_path / "df"), value)
    assert_same_frame(load_value(str(tmp_path / "df")), value)


def test_arrays_pickles_and_models_are_their_libraries_files(tmp_path: Path) -> None:
    array = np.arange(12, dtype="float32").reshape(3, 4)
    assert save_value("a", array, str(tmp_path / "a")) == "npy"
    assert np.array_equal(np.load(tmp_path / "a"), array)

    assert save_value("s", pd.Series([1.5, 2.5], name="s"), str(tmp_path / "s")) == (
        "pandas-pickle"
    )
    pd.testing.assert_series_equal(pd.read_pickle(tmp_path / "s"), pd.Series([1.5, 2.5], name="s"))

    assert save_value("d", {"k": [1, "z"]}, str(tmp_path / "d")) == "cloudpickle"
    assert pickle.loads((tmp_path / "d").read_bytes()) == {"k": [1, "z"]}

    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])  # its coef_ is an array
    assert save_value("m", model, str(tmp_path / "m")) == "joblib"
    assert joblib.load(tmp_path / "m").predict([[1.0]])[0] == 1
    assert load_value(str(tmp_path / "m")).predict([[1.0]])[0] == 1  # joblib's stream, noticed


def test_a_module_travels_by_name(tmp_path: Path) -> None:
    assert save_value("j", json, str(tmp_path / "j")) == "module"
    assert load_value(str(tmp_path / "j")) is json


@pytest.mark.parametrize(
    "value",
    [
        frame(),
        frame(0),
        frame().set_index("b"),
        frame().iloc[[4, 0, 2]],  # an index that is not a range
        pd.DataFrame({"t": pd.to_datetime(["2024-01-01 00:00", "2024-06-30 12:00"])}),
        pd.DataFrame({"x": [True, False], "y": np.array([1, 2], dtype="uint16")}),
        pd.DataFrame({"s": pd.Series(["a", None], dtype="str")}),  # missing text
        pd.DataFrame({"o": pd.Series(["a", "b"], dtype=object)}),  # text as objects
        # What Parquet would change; each must fall back to a pickle that keeps it:
        pd.DataFrame({"o": pd.Series(["a", 1, None], dtype=object)}),  # mixed objects
        pd.DataFrame({1: [1.0], 2: [2.0]}),  # column names that are not strings
        pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")])),
        pd.DataFrame({"c": pd.Categorical(["b", "a", "b"])}),
        pd.DataFrame({"n": pd.array([1, None], dtype="Int64")}),
        pd.DataFrame({"t": pd.to_datetime(["2024-01-01"]).tz_localize("Europe/Paris")}),
        pd.DataFrame({"a": [1], "b": [2]}).rename(columns={"b": "a"}),  # duplicate names
        pd.DataFrame({"l": [[1, 2], [3]]}),  # lists come back as arrays from Parquet
        pd.DataFrame({"a": [1.0]}, index=pd.Index(["r"], name="rows")),
        pd.DataFrame({"f": np.array([1.5], dtype="float16")}),
    ],
    ids=lambda value: "-".join(f"{c}:{t}" for c, t in value.dtypes.astype(str).items())[:60],
)
def test_data_frames_come_back_exactly_in_parquet_or_a_pickle(
    tmp_path: Path, value: pd.DataFrame
) -> None:
    save_value("df", value, str(tmp_path / "df"))
    assert_same_frame(load_value(str(tmp_path / "df")), value)


def test_frame_attrs_survive(tmp_path: Path) -> None:
    value = frame()
    value.attrs["source"] = "sensor 7"
    save_value("df", value, str(tmp_path / "df"))
    assert_same_frame(load_value(str(tmp_path / "df")), value)


_COLUMN = st.sampled_from(
    [
        *("int64", "int32", "uint8", "float64", "float32", "bool", "str", "object-text"),
        *("object-mixed", "datetime64[ns]", "datetime64[us]", "category", "Int64"),
    ]
)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(0, 6))
    names = draw(st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=4, unique=True))
    data: dict[str, Any] = {}
    for name in names:
        kind = draw(_COLUMN)
        if kind in ("str", "object-text", "category"):
            text = st.text(max_size=5)
            if kind == "str":  # missing text is NaN there
                text = st.one_of(st.none(), st.sampled_from(["a", "bb"]), text)
            texts = draw(st.lists(text, min_size=rows, max_size=rows))
            dtype = {"str": "str", "object-text": object, "category": "category"}[kind]
            data[name] = pd.Series(texts, dtype=dtype)
        elif kind == "object-mixed":
            items = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=3))
            data[name] = pd.Series(
                draw(st.lists(items, min_size=rows, max_size=rows)), dtype=object
            )
        elif kind.startswith("datetime64"):
            stamps = st.integers(0, 2**40).map(lambda s: np.datetime64(s, "s"))
            values = draw(st.lists(stamps, min_size=rows, max_size=rows))
            data[name] = pd.Series(np.array(values, dtype="datetime64[s]").astype(kind))
        elif kind == "Int64":
            ints = st.one_of(st.none(), st.integers(-(2**40), 2**40))
            data[name] = pd.array(draw(st.lists(ints, min_size=rows, max_size=rows)), dtype=kind)
        else:
            elements = hnp.from_dtype(np.dtype(kind), allow_nan=True)
            data[name] = draw(hnp.arrays(np.dtype(kind), rows, elements=elements))
    value = pd.DataFrame(data)
    if draw(st.booleans()) and rows:
        value = value.iloc[::-1]  # an index that is not a range
    return value


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=frames())
def test_any_data_frame_round_trips_exactly(tmp_path: Path, value: pd.DataFrame) -> None:
    target = tmp_path / "df"
    save_value("df", value, str(target))
    assert_same_frame(load_value(str(target)), value)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=hnp.arrays(
        st.one_of(hnp.scalar_dtypes(), hnp.array_dtypes(allow_subarrays=False)),
        hnp.array_shapes(min_dims=0, min_side=0, max_side=4),
    ),
    fortran=st.booleans(),
)
@pytest.mark.filterwarnings("ignore:Stored array in format 3.0")  # unicode field names
def test_any_array_round_trips_exactly(tmp_path: Path, value: np.ndarray, fortran: bool) -> None:
    if fortran:
        value = np.asfortranarray(value)
    target = tmp_path / "a"
    save_value("a", value, str(target))
    loaded = load_value(str(target))
    assert type(loaded) is np.ndarray
    assert loaded.dtype == value.dtype and loaded.shape == value.shape
    assert loaded.tobytes() == value.tobytes()


# --- hashed while written, the same bytes every run --------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        frame(1000),
        frame(1000).iloc[::2],
        np.arange(10_000.0),
        {"k": list(range(100))},
        # Past _Hashing.THREADED: chunks are hashed on a second thread, in order.
        frame(300_000),
        np.arange(1_000_000.0),
        {"blob": bytes(range(256)) * 20_000, "more": list(range(50_000))},
    ],
    ids=["frame", "filtered-frame", "array", "dict", "big-frame", "big-array", "big-dict"],
)
def test_the_digest_computed_while_writing_is_the_files_hash(tmp_path: Path, value: Any) -> None:
    written = write_value("v", value, str(tmp_path / "v"))
    assert written["sha256"] == sha256(tmp_path / "v")
    assert written["size"] == (tmp_path / "v").stat().st_size


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sizes=st.lists(st.integers(0, 300), max_size=30), threshold=st.integers(1, 400))
def test_hashing_behind_the_writer_sees_every_byte_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sizes: list[int], threshold: int
) -> None:
    # Tiny thresholds put small writes, gathered writes and writes split into pieces on
    # both sides of the switch to hashing behind the writer.
    monkeypatch.setattr(step_module._Hashing, "THREADED", threshold)
    monkeypatch.setattr(step_module._Hashing, "GATHERED", 16)
    monkeypatch.setattr(step_module._Behind, "CHUNK", 32)
    target = tmp_path / "v"
    with target.open("wb") as handle:
        sink = step_module._Hashing(handle, str(target))
        for index, size in enumerate(sizes):
            assert sink.write(bytes([index % 251]) * size) == size
        digest = sink.hexdigest()
    expected = b"".join(bytes([i % 251]) * n for i, n in enumerate(sizes))
    assert target.read_bytes() == expected
    assert digest == hashlib.sha256(expected).hexdigest()
    assert sink.size == len(expected)


def test_a_value_is_hashed_whole_when_reading_it_back_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> int:
        raise OSError("read back refused")

    monkeypatch.setattr(os, "preadv", broken)
    value = {"blob": bytes(range(256)) * 20_000}  # past THREADED: hashed behind the writer
    written = write_value("v", value, str(tmp_path / "v"))
    assert written["sha256"] == sha256(tmp_path / "v")
    assert load_value(str(tmp_path / "v")) == value


def test_a_full_disk_fails_the_write_and_leaves_no_hashing_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import threading

    def full(descriptor: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    before = threading.active_count()
    target = tmp_path / "v"
    with target.open("wb") as handle:
        sink = step_module._Hashing(handle, str(target))
        sink.write(bytes(2 << 20))  # past THREADED: hashed behind the writer
        sink.write(b"tail")  # gathered, reaches the disk with the digest
        monkeypatch.setattr(os, "write", full)
        with pytest.raises(OSError, match="No space left"):
            sink.hexdigest()
    monkeypatch.undo()
    assert threading.active_count() == before
    with target.open("wb") as handle:  # and a large write that fails on the way
        sink = step_module._Hashing(handle, str(target))
        monkeypatch.setattr(os, "write", full)
        with pytest.raises(OSError, match="No space left"):
            sink.write(bytes(2 << 20))
        monkeypatch.undo()
        assert sink.hexdigest() is not None  # what reached the file: nothing
    assert threading.active_count() == before


def test_a_file_that_cannot_be_opened_for_reading_is_hashed_in_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Say, a bucket mounted write-only: the value is written all the same.
    opened = os.open

    def no_reading(path: Any, flags: int, *args: Any) -> int:
        if flags == os.O_RDONLY and str(path).startswith(str(tmp_path)):
            raise PermissionError("not readable here")
        return opened(path, flags, *args)

    monkeypatch.setattr(os, "open", no_reading)
    value = {"blob": bytes(range(256)) * 20_000, "more": list(range(50_000))}
    written = write_value("v", value, str(tmp_path / "v"))
    monkeypatch.undo()
    assert written["sha256"] == sha256(tmp_path / "v")
    assert written["size"] == (tmp_path / "v").stat().st_size


_PRODUCE = """
import hashlib, sys
import numpy as np, pandas as pd
from kfg.runtime.step import write_value
rng = np.random.default_rng(0)
frame = pd.DataFrame({"a": rng.random(500), "b": rng.integers(0, 9, 500),
                      "label": np.array(["x", "yy", "zzz"])[rng.integers(0, 3, 500)]})
values = {
    "frame": frame,
    "filtered": frame[frame["a"] > 0.5],
    "objects": frame.astype({"label": object}),
    "series": frame["a"],
    "array": rng.random((20, 3)),
    "sklearn": __import__("sklearn.linear_model").linear_model.LinearRegression().fit(
        frame[["a", "b"]], frame["a"]),
    "function": lambda x: x + 1,
    "dict": {"names": ["a", "b"], "n": 3},
}
for name, value in values.items():
    written = write_value(name, value, sys.argv[1] + "/" + name)
    print(name, written["format"], written["sha256"])
"""


def test_digests_are_the_same_run_after_run(tmp_path: Path) -> None:
    runs = []
    for seed in ("1", "2"):  # another process, another string hash seed
        out = tmp_path / seed
        out.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, "-c", _PRODUCE, str(out)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        runs.append(done.stdout.splitlines())
    assert runs[0] == runs[1]
    formats = {line.split()[0]: line.split()[1] for line in runs[0]}
    assert formats["frame"] == ("parquet" if HAS_PYARROW else "pandas-pickle")
    assert formats["sklearn"] == "joblib" and formats["array"] == "npy"


def test_a_step_reports_what_it_wrote(tmp_path: Path) -> None:
    outputs = {"df": str(tmp_path / "df"), "n": str(tmp_path / "n")}
    run_step(
        pipeline="p",
        step="s",
        prelude=[],
        cells=[(1, "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})\nn = 3")],
        parameters={},
        inputs={},
        outputs=outputs,
        metrics={},
        digests=str(tmp_path / "digests.json"),
    )
    reported = json.loads((tmp_path / "digests.json").read_text())
    assert set(reported) == {"df", "n"}
    for name, path in outputs.items():
        assert reported[name]["sha256"] == sha256(Path(path))
        assert reported[name]["size"] == Path(path).stat().st_size
    assert reported["n"]["format"] == "cloudpickle"


# --- reading without copying, and without letting a reader change the file ---------------


def test_an_array_is_mapped_and_changing_it_leaves_the_file_alone(tmp_path: Path) -> None:
    target = tmp_path / "a"
    save_value("a", np.arange(100_000, dtype="int64"), str(target))
    before = target.read_bytes()
    loaded = load_value(str(target))
    assert type(loaded) is np.ndarray and loaded.flags.writeable
    assert isinstance(loaded.base, np.memmap)  # pages of the file, not a copy
    loaded[:10] = -1  # a consumer changing its input in place
    loaded += 1
    assert target.read_bytes() == before
    again = load_value(str(target))
    assert again[0] == 0 and again[-1] == 99_999
    assert loaded[0] == 0  # the consumer sees its own change


def test_a_changed_input_does_not_reach_the_cached_value_through_a_step(tmp_path: Path) -> None:
    save_value("x", np.zeros(1000), str(tmp_path / "x"))
    save_value("df", frame(), str(tmp_path / "df"))
    before = {name: (tmp_path / name).read_bytes() for name in ("x", "df")}
    run_step(
        pipeline="p",
        step="s",
        prelude=[],
        cells=[(1, "x[:] = 7\ndf.loc[0, 'a'] = 99.0\ndf['b'] += 1\ntotal = float(x.sum())")],
        parameters={},
        inputs={"x": str(tmp_path / "x"), "df": str(tmp_path / "df")},
        outputs={"total": str(tmp_path / "total")},
        metrics={},
    )
    assert load_value(str(tmp_path / "total")) == 7000.0
    assert {name: (tmp_path / name).read_bytes() for name in ("x", "df")} == before


def test_an_empty_array_loads_without_a_mapping(tmp_path: Path) -> None:
    save_value("e", np.zeros((0, 3)), str(tmp_path / "e"))
    loaded = load_value(str(tmp_path / "e"))
    assert loaded.shape == (0, 3)


# --- what an earlier kfg wrote, and what kfg never wrote ---------------------------------


def _tar_of_an_earlier_kfg(path: Path, meta: dict[str, Any], member: str, payload: bytes) -> None:
    """A value as kfg saved it before this change: an uncompressed tar of the value and kfg-value.json."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in ((member, payload), ("kfg-value.json", json.dumps(meta).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_values_of_an_earlier_kfg_still_load(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(4))
    meta = {"format": "npy", "name": "a", "type": "numpy.ndarray", "version": 1}
    _tar_of_an_earlier_kfg(tmp_path / "a", meta, "value.npy", buffer.getvalue())
    assert np.array_equal(load_value(str(tmp_path / "a")), np.arange(4))
    meta = {"format": "cloudpickle", "name": "d", "type": "builtins.dict", "version": 1}
    _tar_of_an_earlier_kfg(tmp_path / "d", meta, "value.pkl", pickle.dumps({"k": 1}))
    assert load_value(str(tmp_path / "d")) == {"k": 1}


def test_a_file_kfg_did_not_write_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "v").write_text("hello")
    with pytest.raises(StepFailed, match=r"holds no value kfg wrote \(it starts with b'hello'\)"):
        load_value(str(tmp_path / "v"))


def test_saving_over_a_directory_value_of_an_earlier_kfg_replaces_it(tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "kfg-value.json").write_text("{}")
    save_value("v", [1, 2], str(tmp_path / "v"))
    assert load_value(str(tmp_path / "v")) == [1, 2]


@needs_pyarrow
def test_a_parquet_input_without_pyarrow_says_what_to_add(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_value("df", frame(), str(tmp_path / "df"))
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as in a pod without it
    with pytest.raises(StepFailed, match="needs pyarrow: add pyarrow to this step's packages"):
        run_step(
            pipeline="p",
            step="s",
            prelude=[],
            cells=[(1, "n = len(df)")],
            parameters={},
            inputs={"df": str(tmp_path / "df")},
            outputs={},
            metrics={},
        )


@needs_pyarrow
@pytest.mark.parametrize("large", [True, False])
def test_a_large_frame_is_decoded_with_malloc_and_arrow_keeps_its_own_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, large: bool
) -> None:
    # From step._MALLOC_DECODE_FROM on, the decoded columns come from the C library's
    # allocator, so what pandas copies and frees goes back to the OS for the step's own
    # arrays (step._decoding_with_malloc); the string column it keeps lives there too.
    # Smaller files decode faster in Arrow's own pool. Arrow's pool is the default again
    # after, for what the step's code allocates, and after a load that fails as well.
    import pyarrow as pa

    path = tmp_path / "df"
    save_value("df", frame(10_000), str(path))
    monkeypatch.setattr(step_module, "_MALLOC_DECODE_FROM", 0 if large else path.stat().st_size + 1)
    before = pa.default_memory_pool()
    kept = pa.system_memory_pool().bytes_allocated()
    loaded = load_value(str(path))
    assert_same_frame(loaded, frame(10_000))
    # the labels' buffers, in the pool that decoded them
    assert (pa.system_memory_pool().bytes_allocated() > kept) == large
    assert pa.default_memory_pool().backend_name == before.backend_name

    path.write_bytes(b"PAR1" + b"\0" * 64)  # not a Parquet file after all
    monkeypatch.setattr(step_module, "_MALLOC_DECODE_FROM", 0 if large else 1 << 20)
    with pytest.raises(pa.ArrowInvalid):
        load_value(str(path))
    assert pa.default_memory_pool().backend_name == before.backend_name


_FIRST_USE = """
import json, sys
import numpy as np, pandas as pd
from kfg.runtime.step import format_imports, load_value, write_value
for name in format_imports({modules!r}):
    __import__(name)
before = set(sys.modules)
table = pd.DataFrame({{"a": np.arange(3.0), "label": ["x", "y", "z"]}})
for index, value in enumerate([table, np.arange(4), {{"k": [1, 2]}}]):
    write_value("v", value, f"{{sys.argv[1]}}/{{index}}")
    load_value(f"{{sys.argv[1]}}/{{index}}")
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.parametrize("modules", [["pandas"], ["numpy", "pandas.io"]])
def test_a_forked_step_imports_nothing_more_to_pass_values(
    tmp_path: Path, modules: list[str]
) -> None:
    # A warm server imports `format_imports(prelude)` once; a step forked from it then
    # saves and loads frames, arrays and plain objects without importing a module of the
    # libraries doing it (pyarrow's Parquet layers alone were ~0.15 s per step process).
    script = _FIRST_USE.format(modules=modules)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    imported = json.loads(done.stdout)
    libraries = ("pyarrow", "pandas.io", "cloudpickle", "numpy.lib")
    assert [name for name in imported if name.startswith(libraries)] == []


def test_format_imports_follow_the_libraries_a_step_uses() -> None:
    from kfg.runtime.step import format_imports

    with_pandas = format_imports(["numpy", "pandas"])
    assert ("pyarrow.parquet" in with_pandas) is HAS_PYARROW
    assert "cloudpickle" in with_pandas
    # a prelude without pandas never pays for pyarrow
    assert not any(name.startswith("pyarrow") for name in format_imports(["numpy", "sklearn"]))
