"""Atomic outputs, output paths checked before any work, input files read safely (no TensorFlow)."""
from __future__ import annotations

import builtins
import errno
import os
import threading

import pytest

from tfprofscale import output
from tfprofscale.errors import InputError
from tfprofscale.inputs import check_input_file, read_bytes, read_text
from tfprofscale.output import atomic_path, check_output_folder, check_output_path, write_text


def _disk_full_after(monkeypatch, limit: int) -> None:
    """Make files opened for writing raise ENOSPC once ``limit`` bytes have been written."""
    real_open = builtins.open

    class FillingHandle:
        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            if self.written + len(data) > limit:
                self.handle.write(data[:limit - self.written])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.written += len(data)
            return self.handle.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def __getattr__(self, name):
            return getattr(self.handle, name)

    def filling_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return FillingHandle(handle) if "w" in mode else handle

    monkeypatch.setattr(builtins, "open", filling_open)


def test_a_full_disk_midway_leaves_the_earlier_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    target.write_text('{"earlier": true}\n')
    _disk_full_after(monkeypatch, limit=4096)
    with pytest.raises(InputError, match=r"cannot write .*x\.json: No space left on device"):
        write_text(target, "y" * 10_000)
    monkeypatch.undo()
    assert target.read_text() == '{"earlier": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]  # no partial file left behind


def test_report_write_json_on_a_full_disk_keeps_the_earlier_report(tmp_path, monkeypatch):
    from tfprofscale.records import Report
    from tfprofscale.records import StepTimes
    from tfprofscale.records import Totals

    steps = StepTimes(median=1.0, p10=1.0, p90=1.0, min=1.0, cv=0.0, n=1)
    totals = Totals(params=0, analytic_flops=None, analytic_macs=None, graph_flops=0, activation_bytes=0,
                    analytic_memory_bytes=0, peak_bytes=None, resident_bytes=None, step_time_ms=steps)
    report = Report(model="m" * 10_000, params={}, batch_size=1, tensorflow="2.21", device="CPU:0", totals=totals,
                    layers=[], ops=[])
    target = tmp_path / "x.json"
    target.write_text("earlier\n")
    _disk_full_after(monkeypatch, limit=4096)
    with pytest.raises(InputError, match="No space left on device"):
        report.write_json(target)
    monkeypatch.undo()
    assert target.read_text() == "earlier\n"


def test_atomic_path_keeps_the_suffix_and_renames_only_on_success(tmp_path):
    target = tmp_path / "model.weights.h5"
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.endswith("model.weights.h5")
        temporary.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["model.weights.h5"]


def test_write_text_replaces_the_whole_file(tmp_path):
    target = tmp_path / "r.csv"
    target.write_text("a much longer earlier content\n" * 10)
    write_text(target, "new\n")
    assert target.read_text() == "new\n"


@pytest.mark.parametrize("make, option, expected", [
    (lambda d: (d / "afile").write_text("x") and d / "afile" / "x.json", "--json",
     "{d}/afile is a regular file, not a folder"),
    (lambda d: d / "nope" / "x.json", "--csv", "folder {d}/nope does not exist"),
    (lambda d: d, "--save", "is a directory, not a file"),
    (lambda d: os.mkfifo(d / "fifo") or d / "fifo", "--json", "is not a regular file"),
])
def test_check_output_path_names_the_reason(tmp_path, make, option, expected):
    path = make(tmp_path)
    with pytest.raises(InputError) as caught:
        check_output_path(path, option)
    assert str(caught.value) == f"{option} {path}: {expected.format(d=tmp_path)}"


def test_check_output_path_refuses_a_read_only_folder_and_file(tmp_path, monkeypatch):
    folder, existing = tmp_path / "ro", tmp_path / "ro.json"
    folder.mkdir()
    existing.write_text("")
    real_access = os.access  # root may write anywhere: answer as the kernel does for other users
    monkeypatch.setattr(output.os, "access", lambda path, mode: (
        False if os.fspath(path) in (os.fspath(folder), os.fspath(existing)) and mode & os.W_OK
        else real_access(path, mode)))
    with pytest.raises(InputError, match=rf"^--json {folder}/x.json: folder {folder} is read-only$"):
        check_output_path(folder / "x.json", "--json")
    with pytest.raises(InputError, match=rf"^--json {existing}: the file is read-only$"):
        check_output_path(existing, "--json")


def test_check_output_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match=rf"^--out {tmp_path}/afile: {tmp_path}/afile is a regular file, not a folder$"):
        check_output_folder(tmp_path / "afile", "--out")
    with pytest.raises(InputError, match="afile is a regular file, not a folder$"):
        check_output_folder(tmp_path / "afile" / "sub", "--out")
    assert check_output_folder(tmp_path / "new" / "deeper", "--out") == tmp_path / "new" / "deeper"


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "config.ini"
    os.mkfifo(fifo)
    outcome: list[str] = []
    reader = threading.Thread(target=lambda: outcome.append(_error_of(read_text, fifo, "config file")), daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert outcome == [f"config file {fifo} is not a regular file"]


def test_dev_zero_is_refused_before_reading():
    assert _error_of(read_bytes, "/dev/zero", "latency model") == "latency model /dev/zero is not a regular file"


def test_an_oversized_file_is_refused(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 101)
    assert _error_of(read_bytes, big, "latency model", 100) == \
        f"latency model {big} is larger than 100 bytes: not a file tfprofscale wrote or reads"


def test_input_file_kinds(tmp_path):
    assert _error_of(check_input_file, tmp_path, "--weights") == f"--weights {tmp_path} is a directory, not a file"
    assert _error_of(check_input_file, tmp_path / "no", "latency model") == \
        f"latency model {tmp_path / 'no'} does not exist"
    binary = tmp_path / "m.py"
    binary.write_bytes(b"x = 1\n\0\0")
    assert _error_of(read_text, binary, "model file") == f"model file {binary} is not a text file (it contains NUL bytes)"


def _error_of(function, *args) -> str:
    try:
        function(*args)
    except InputError as error:
        return str(error)
    return "no error"
