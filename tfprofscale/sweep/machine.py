"""Which machine measured a configuration: its host name and a fingerprint of what sets its speed.

The fingerprint names what a step time depends on: the CPU model and its
core count, the TensorFlow version and its thread settings, and the GPU
where there is one. Two workers with the same fingerprint measure on the
same kind of machine, so their results can be fitted together; the host
name only says which one. ``machine`` is a short hash of the description
(a column that groups), stored with the readable description.
"""
from __future__ import annotations

import hashlib
import os
import platform
import socket
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
HASH_CHARS = 10


@dataclass(frozen=True)
class Machine:
    """The fingerprint of the machine a worker runs on."""

    cpu_model: str
    cores: int | None
    tensorflow: str
    intra_op_threads: int
    inter_op_threads: int
    gpu: str | None = None

    @property
    def description(self) -> str:
        """One readable line: ``CPU model, N cores, TensorFlow V (threads intra/inter), GPU``."""
        threads = f"threads intra {_threads(self.intra_op_threads)}, inter {_threads(self.inter_op_threads)}"
        cores = f"{self.cores} cores" if self.cores is not None else "unknown core count"
        gpu = f", GPU {self.gpu}" if self.gpu else ", no GPU"
        return f"{self.cpu_model}, {cores}, TensorFlow {self.tensorflow} ({threads}){gpu}"

    @property
    def fingerprint(self) -> str:
        """A short stable hash of the description: equal for machines of the same kind."""
        return hashlib.sha1(self.description.encode()).hexdigest()[:HASH_CHARS]

    def to_dict(self) -> dict[str, Any]:
        """The fields with the fingerprint and the description, JSON-ready."""
        return {"fingerprint": self.fingerprint, "description": self.description, **asdict(self)}


def _threads(count: int) -> str:
    return "default" if count == 0 else str(count)


@lru_cache(maxsize=1)
def this_machine() -> Machine:
    """The fingerprint of the machine this process runs on (imports TensorFlow; computed once)."""
    import tensorflow as tf

    return Machine(cpu_model=cpu_model(), cores=os.cpu_count(), tensorflow=tf.__version__,
                   intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads(),
                   inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads(),
                   gpu=gpu_name(tf.config.list_physical_devices("GPU"), tf.config.experimental.get_device_details))


def host_name() -> str:
    """This machine's network name."""
    return socket.gethostname()


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name (Linux's /proc/cpuinfo, else what ``platform`` says, else 'unknown CPU')."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def gpu_name(devices: list[Any], details: Any) -> str | None:
    """The name of the first GPU (with a count when there are several); None without a GPU.

    ``details(device)`` is TensorFlow's ``get_device_details``: a dict with
    ``device_name`` on CUDA builds, possibly empty elsewhere.
    """
    if not devices:
        return None
    name = (details(devices[0]) or {}).get("device_name") or devices[0].name
    return name if len(devices) == 1 else f"{len(devices)} x {name}"
