"""Python benchmark of Tollgate: ``Project.consume`` per call and ``Project.consume_many`` per
amount, beside an empty ctypes call into the same library (``tg_version``) and the bare ctypes
call of ``tg_consume`` that ``Project.consume`` wraps (which splits the cost into ctypes'
argument conversion and the wrapper's own).

Run by ``compare`` (benches/src/external/python.rs) with the workspace's ``python/`` on
``PYTHONPATH`` and ``TOLLGATE_LIBRARY`` set; prints one JSON line per contestant in the format
that program parses. Standalone::

    PYTHONPATH=python python3 benches/python/bench.py --dir /tmp/tg-bench

Method, as in benches/src/harness.rs but on one thread (the GIL serialises Python callers):
after a warm-up, batches of calls are timed with ``time.perf_counter_ns`` until the measuring
window ends. One sample is the mean ns per call (or per amount) of one batch; median and p99
are nearest-rank over samples. Every contestant is timed in the same kind of ``for`` loop, so
the loop's own cost is in every figure alike.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import tempfile
import time
from array import array
from typing import Callable, Dict, List

import tollgate
from tollgate import _bindings, _ffi

#: 64 TiB less one byte, the largest key limit: 1-byte consumes never exhaust it.
KEY_LIMIT = (1 << 46) - 1
#: Amounts per consume_many call, as in the Rust benchmark.
MANY = 1024


def percentile(sorted_values: List[float], p: float) -> float:
    """Nearest-rank percentile ``p`` (0..1) of sorted values."""
    rank = max(1, min(len(sorted_values), math.ceil(p * len(sorted_values))))
    return sorted_values[rank - 1]


def thread_cpu_ns() -> int:
    """Nanoseconds this thread has spent on a CPU (Linux), or -1 when unknown."""
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as stat:
            return int(stat.read().split()[0])
    except (OSError, ValueError, IndexError):
        return -1


def measure(batch_call: Callable[[], None], per_batch: int, warmup_ms: int, measure_ms: int) -> Dict[str, float]:
    """Times ``batch_call`` (which performs ``per_batch`` units) repeatedly; returns the
    distribution of ns per unit and the throughput."""
    clock = time.perf_counter_ns
    warm_until = clock() + warmup_ms * 1_000_000
    while clock() < warm_until:
        batch_call()
    samples: List[float] = []
    units = 0
    cpu_before = thread_cpu_ns()
    began = clock()
    stop_at = began + measure_ms * 1_000_000
    while True:
        t0 = clock()
        batch_call()
        t1 = clock()
        samples.append((t1 - t0) / per_batch)
        units += per_batch
        if t1 >= stop_at:
            break
    elapsed_ns = clock() - began
    cpu_after = thread_cpu_ns()
    samples.sort()
    figures = {
        "samples": len(samples),
        "median_ns": percentile(samples, 0.50),
        "p99_ns": percentile(samples, 0.99),
        "mops": units / (elapsed_ns / 1e9) / 1e6,
    }
    if cpu_before >= 0 and cpu_after >= 0:
        figures["on_cpu"] = min(1.0, (cpu_after - cpu_before) / elapsed_ns)
    return figures


def key(key_id: str) -> dict:
    """A 64 TiB data-volume key."""
    return {
        "id": key_id,
        "delivery": "online",
        "kind": "commercial",
        "edition": "standard",
        "scheme": {"data_volume": {"limit_bytes": KEY_LIMIT}},
    }


def emit(contestant: str, op: str, batch: int, figures: Dict[str, float]) -> None:
    """Prints one result line."""
    row = {"contestant": contestant, "op": op, "threads": 1, "sharing": "shared", "batch": batch}
    row.update(figures)
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help="state directory (default: a temporary one)")
    parser.add_argument("--batch", type=int, default=1000, help="calls per timed sample")
    parser.add_argument("--warmup-ms", type=int, default=200)
    parser.add_argument("--measure-ms", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run(args.dir or scratch, args.batch, args.warmup_ms, args.measure_ms)


def run(state_dir: str, batch: int, warmup_ms: int, measure_ms: int) -> None:
    """Measures the three contestants on a fresh state in ``state_dir``."""
    # A second function object on the same library, so that its result type can be an
    # integer: the package's own `tg_version` converts the result to bytes, which an empty
    # call should not pay for.
    version = ctypes.CDLL(str(_ffi.library_path)).tg_version
    version.restype = ctypes.c_void_p
    version.argtypes = ()

    with tollgate.Engine(state_dir, capacity=16) as engine:
        engine.create_project("p0")
        engine.add_key("p0", key("p0-A"))
        engine.add_reserve("p0", key("p0-R"))
        with engine.project("p0") as project:
            consume = project.consume
            raw_consume = _bindings.tg_consume
            handle = project._handle
            consume_many = project.consume_many
            amounts = array("Q", [1] * MANY)
            many_calls = max(1, batch // 100)

            def empty_calls() -> None:
                for _ in range(batch):
                    version()

            def raw_consume_calls() -> None:
                for _ in range(batch):
                    raw_consume(handle, 1)

            def consume_calls() -> None:
                for _ in range(batch):
                    consume(1)

            def many_batches() -> None:
                for _ in range(many_calls):
                    if consume_many(amounts) != MANY:
                        raise RuntimeError("consume_many refused")

            emit("py_ctypes_empty", "Python ctypes tg_version() (empty call)", batch,
                 measure(empty_calls, batch, warmup_ms, measure_ms))
            emit("py_ctypes_tg_consume", "Python ctypes tg_consume(handle, 1), no wrapper", batch,
                 measure(raw_consume_calls, batch, warmup_ms, measure_ms))
            emit("py_consume", "Python Project.consume(1)", batch,
                 measure(consume_calls, batch, warmup_ms, measure_ms))
            emit("py_consume_many", f"Python consume_many(array('Q'), {MANY}) per amount",
                 many_calls * MANY, measure(many_batches, many_calls * MANY, warmup_ms, measure_ms))


if __name__ == "__main__":
    main()
