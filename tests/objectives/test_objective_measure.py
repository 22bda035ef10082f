"""Measurement and training building blocks, checked in isolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from paretotune.objectives._measure import (
    PeakMemory,
    compute_clock,
    latency,
    pinned_threads,
    serialized_size,
    serving_memory_mb,
    throughput,
    training_memory_mb,
)
from paretotune.objectives._models import fit_scaler
from paretotune.objectives._training import make_schedule, random_shift
from torch import nn


def test_latency_and_throughput_are_positive():
    model = nn.Sequential(nn.Linear(8, 8)).eval()
    result = latency(model, torch.zeros(1, 8), repeats=7)
    assert result["latency_ms"] > 0 and result["latency_ms_p90"] >= result["latency_ms"]
    assert result["latency_wall_ms"] > 0
    assert result["latency_cv"] >= 0 and 5 <= result["latency_rounds"] <= 10
    assert throughput(model, torch.zeros(10, 8)) > 0


def test_latency_stops_once_its_rounds_agree_and_keeps_going_otherwise():
    model = nn.Sequential(nn.Linear(8, 8)).eval()
    loose = latency(model, torch.zeros(1, 8), repeats=5, target_cv=1.0)
    assert loose["latency_rounds"] == 5  # the minimum: five medians to compare
    strict = latency(model, torch.zeros(1, 8), repeats=5, target_cv=-1.0, max_rounds=6)
    assert strict["latency_rounds"] == 6


def test_the_compute_clock_is_the_threads_cpu_time_only_with_one_cpu_thread():
    with pinned_threads(1):
        assert compute_clock(torch.device("cpu"))[0] == "thread_cpu"
    with pinned_threads(2):
        assert compute_clock(torch.device("cpu"))[0] == "wall"
    assert compute_clock(torch.device("cuda"))[0] == "wall"  # the thread only waits for a GPU


def test_training_memory_counts_weights_grads_optimizer_state_and_activations():
    model = nn.Linear(10, 20)
    optimizer = torch.optim.Adam(model.parameters())
    batch = torch.zeros(32, 10)
    model(batch).sum().backward()
    optimizer.step()
    weights = (10 * 20 + 20) * 4
    state = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values())
    activations = 32 * 10 * 4 + 32 * 20 * 4  # the batch, the layer's output
    expected = (weights + weights + state + activations) / 2**20
    assert training_memory_mb(model, optimizer, batch, model) == pytest.approx(expected)
    assert state == 2 * weights + 2 * 4  # Adam: two moments per weight, a step per tensor


def test_serving_memory_is_the_stored_weights_and_one_calls_activations():
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU()).eval()
    row = torch.zeros(1, 10)
    expected = (1000 + 10 * 4 + 20 * 4 + 20 * 4) / 2**20
    assert serving_memory_mb(model, row, weights_bytes=1000) == pytest.approx(expected)


def test_sparse_size_beats_dense_only_when_sparse():
    model = nn.Linear(100, 100)
    dense = serialized_size(model)
    assert serialized_size(model, sparse=True) == pytest.approx(dense, abs=64)
    with torch.no_grad():
        model.weight[:, 10:] = 0
    assert serialized_size(model, sparse=True) < 0.3 * dense  # 90 % zeros


def test_pinned_threads_restores():
    before = torch.get_num_threads()
    with pinned_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_peak_memory_sees_an_allocation():
    with PeakMemory(torch.device("cpu")) as memory:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB
        block += 1
        import time

        time.sleep(0.05)
    del block
    assert memory.peak_mb > 30


def test_random_shift_moves_by_at_most_one_pixel():
    image = torch.zeros(1, 1, 5, 5)
    image[0, 0, 2, 2] = 1.0
    flat = image.reshape(1, -1).repeat(200, 1)
    shifted = random_shift(flat, (1, 5, 5), torch.Generator().manual_seed(0))
    positions = shifted.reshape(200, 5, 5).nonzero()[:, 1:]
    assert len(positions) == 200  # the pixel never falls off
    assert positions.min() >= 1 and positions.max() <= 3
    assert len({tuple(p) for p in positions.tolist()}) == 9  # every shift occurs


def test_image_scaler_is_per_channel():
    X = np.random.default_rng(0).normal(size=(50, 2 * 3 * 3)).astype(np.float32)
    X[:, 9:] += 5  # second channel
    shift, scale = fit_scaler(X, "standardize", (2, 3, 3))
    assert len(set(shift[:9].tolist())) == 1 and shift[9] == pytest.approx(X[:, 9:].mean(), 1e-5)
    shift, scale = fit_scaler(X, "minmax", None)
    assert scale.shape == (18,)


def test_step_schedule_divides_every_third_of_the_epochs():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = make_schedule("step", opt, epochs=9)
    lrs = []
    for _ in range(9):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert lrs == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
