"""Cost measurements: latency, throughput, serialized size, parameter count, peak memory.

Everything is measured on the real (compressed) model, never assumed.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import statistics
import threading
import time
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

WARMUP_RUNS = 5
THROUGHPUT_BATCH = 256


def sync(device: torch.device) -> None:
    """Wait for queued cuda work (a no-op on CPU) so a timer reads finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def latency(model: nn.Module, row: torch.Tensor, repeats: int) -> dict[str, float]:
    """Per-sample latency at batch 1: warm-up, then ``repeats`` timed calls.

    Returns ``latency_ms`` (median), ``latency_ms_p90`` and ``latency_cv`` (std / mean).
    """
    device = row.device
    for _ in range(WARMUP_RUNS):
        model(row)
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        model(row)
        sync(device)
        times.append((time.perf_counter_ns() - start) / 1e6)
    mean = statistics.fmean(times)
    return {
        "latency_ms": statistics.median(times),
        "latency_ms_p90": float(np.percentile(times, 90)),
        "latency_cv": statistics.pstdev(times) / mean if mean > 0 else 0.0,
    }


@torch.inference_mode()
def throughput(model: nn.Module, X: torch.Tensor, min_seconds: float = 0.05) -> float:
    """Samples per second at batch 256 (rows repeated to fill the batch)."""
    reps = -(-THROUGHPUT_BATCH // X.shape[0])
    batch = X.repeat(reps, 1)[:THROUGHPUT_BATCH]
    model(batch)
    sync(batch.device)
    runs, start = 0, time.perf_counter()
    while True:
        model(batch)
        runs += 1
        sync(batch.device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and runs >= 3:
            return THROUGHPUT_BATCH * runs / elapsed


def serialized_size(model: nn.Module, *, sparse: bool = False) -> int:
    """Bytes of ``torch.save(model.state_dict())`` written to memory.

    With ``sparse=True`` every float matrix (2+ dims) is stored in the smallest of three
    real encodings before saving: dense; a bitmap (non-zero values plus a bit-packed
    mask); or CSR with int32 indices. That is the honest size of an unstructured-pruned
    model (its dense kernels gain no speed).
    """
    state = model.state_dict()
    if sparse:
        state = {k: _compact(v) for k, v in state.items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer().nbytes


def _compact(t: object) -> object:
    """The smallest real encoding of a float matrix: dense, bitmap or int32 CSR."""
    if not isinstance(t, torch.Tensor) or t.dim() < 2 or not t.is_floating_point():
        return t
    matrix = t.detach().cpu().reshape(t.shape[0], -1)
    mask = matrix != 0
    nnz, item = int(mask.sum()), t.element_size()
    sizes = {
        "dense": t.numel() * item,
        "bitmap": nnz * item + (t.numel() + 7) // 8,
        "csr": nnz * (item + 4) + (matrix.shape[0] + 1) * 4,
    }
    best = min(sizes, key=sizes.__getitem__)
    if best == "dense":
        return t
    if best == "bitmap":
        bits = torch.from_numpy(np.packbits(mask.numpy().ravel()))
        return {"shape": tuple(t.shape), "mask": bits, "values": matrix[mask]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        csr = matrix.to_sparse_csr()
        crow, col = csr.crow_indices().to(torch.int32), csr.col_indices().to(torch.int32)
        return torch.sparse_csr_tensor(crow, col, csr.values(), matrix.shape)


def count_params(model: nn.Module) -> int:
    """Number of trainable parameter elements (buffers such as scaler stats excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_nonzero_params(model: nn.Module) -> int:
    """Parameter elements that are not exactly zero."""
    return sum(int(torch.count_nonzero(p)) for p in model.parameters())


@contextlib.contextmanager
def pinned_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the old value after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class PeakMemory:
    """Peak memory of a block, in MB: ``torch.cuda.max_memory_allocated`` on cuda; on CPU the
    peak resident set size above the level at entry, sampled every 5 ms from /proc (falls
    back to the ``ru_maxrss`` increase where /proc is missing). CPU figures include the
    allocator's slack, so treat small values as noise.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = 0
        self._peak = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        elif _rss_bytes() is not None:
            self._base = self._peak = _rss_bytes() or 0
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        else:
            self._base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, _rss_bytes() or 0)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, _rss_bytes() or 0)
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak_mb = max(0, peak - self._base) / 2**20


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
