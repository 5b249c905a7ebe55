"""A real TensorBoard on 127.0.0.1 finds the profile run through the Profile plugin."""
from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import tfprofscale


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return json.loads(body)


@pytest.fixture
def tensorboard(tmp_path):
    logdir = tmp_path / "runs"
    logdir.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    yield logdir, f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=30)


def wait_for_runs(base: str, deadline_s: float = 90.0) -> list[str]:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            runs = get_json(f"{base}/data/plugin/profile/runs")
            if runs:
                return runs
        except OSError:
            pass
        time.sleep(1.0)
    return []


def test_profile_run_is_listed_with_its_tools(tensorboard, cnn_file):
    logdir, base = tensorboard
    report = tfprofscale.profile(str(cnn_file), steps=3, warmup=1, trace_steps=2, logdir=str(logdir))
    runs = wait_for_runs(base)
    session = report.trace_dir.split("/plugins/profile/")[-1]
    expected = f"two_layer_cnn-b1/{session}"
    assert expected in runs
    tools = get_json(f"{base}/data/plugin/profile/run_tools?run={expected}")
    assert {"framework_op_stats", "overview_page"} <= set(tools)
