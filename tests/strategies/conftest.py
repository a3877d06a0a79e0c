"""Synthetic uplift data with known effects, shared by the learner and evaluation tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

SEED = 20261127


@dataclass(frozen=True)
class UpliftData:
    x: np.ndarray
    arm: np.ndarray
    y: np.ndarray
    tau: np.ndarray  # (n, K) true effect of each arm


def make_uplift_data(n: int, seed: int = SEED, confounded: bool = False) -> UpliftData:
    """Two arms with heterogeneous effects: arm 1 helps where x0 > 0.5, arm 2 rises with x1 and hurts at
    low x1. ``confounded``: treatment is likelier where x0 (which also drives the baseline) is high."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 5))
    tau = np.column_stack([np.where(x[:, 0] > 0.5, 4.0, 0.0), 6.0 * x[:, 1] - 2.0])
    base = 10.0 + 8.0 * x[:, 0] + 3.0 * x[:, 2]
    if confounded:
        p_treated = np.clip(0.15 + 0.7 * x[:, 0], 0.05, 0.95)
        treated = rng.random(n) < p_treated
        arm = np.where(treated, rng.integers(1, 3, n), 0)
    else:
        arm = rng.integers(0, 3, n)
    effect = np.where(arm > 0, tau[np.arange(n), np.maximum(arm - 1, 0)], 0.0)
    y = base + effect + rng.normal(0, 1.5, n)
    return UpliftData(x, arm, y, tau)


@pytest.fixture(scope="session")
def randomized() -> UpliftData:
    return make_uplift_data(3000)


@pytest.fixture(scope="session")
def confounded() -> UpliftData:
    return make_uplift_data(4000, confounded=True)
