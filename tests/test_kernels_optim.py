"""The fused Adam update: Numba equals the NumPy reference bit for bit (same operations, same
order, same dtype), and the optimizer gives the same trajectory with kernels on and off."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from minidl.kernels import optim as kernels
from minidl.kernels.dispatch import use

import minidl


def adam_state(rng, shape, dtype, amsgrad):
    arrays = [rng.standard_normal(shape).astype(dtype) for _ in range(2)]  # p, g
    arrays += [rng.standard_normal(shape).astype(dtype), rng.random(shape).astype(dtype)]  # m, v
    arrays.append(rng.random(shape).astype(dtype) if amsgrad else None)  # v_max
    return arrays


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(
    shape=st.lists(st.integers(0, 7), min_size=0, max_size=3).map(tuple),
    amsgrad=st.booleans(),
    step=st.integers(1, 1000),
    seed=st.integers(0, 2**16),
)
def test_adam_numba_equals_reference(dtype, shape, amsgrad, step, seed):
    results = []
    for update in (kernels.adam_update_reference, kernels.adam_update_numba):
        p, g, m, v, v_max = adam_state(np.random.default_rng(seed), shape, dtype, amsgrad)
        constants = kernels._constants(np.dtype(dtype), 1e-3, 0.9, 0.999, 1e-8, step)
        update(p, g, m, v, v_max, constants, np.empty_like(p))
        results.append([a for a in (p, m, v, v_max) if a is not None])
    for reference, fused in zip(*results):
        np.testing.assert_array_equal(fused, reference)
        assert fused.dtype == dtype


def test_adam_numba_updates_a_strided_parameter_in_place():
    rng = np.random.default_rng(0)
    p, g, m, v, _ = adam_state(rng, (4, 3), np.float64, False)
    expected = [a.copy() for a in (p, g, m, v)]
    kernels.adam_update(expected[0], *expected[1:], None, lr=0.1, beta1=0.9, beta2=0.999,
                        eps=1e-8, step=1, work=np.empty((4, 3)))
    strided = np.asfortranarray(p)  # not C-contiguous: the update must still land in it
    kernels.adam_update(strided, g, m, v, None, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
                        step=1, work=np.empty((4, 3)))
    np.testing.assert_array_equal(strided, expected[0])


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_trajectory_is_the_same_with_kernels_and_references(amsgrad):
    trajectories = []
    for mode in ("auto", "reference"):
        with use(mode):
            minidl.manual_seed(0)
            model = minidl.nn.Linear(5, 3)
            optimizer = minidl.optim.Adam(model.parameters(), lr=0.1, amsgrad=amsgrad,
                                          weight_decay=0.01)
            x = minidl.randn(8, 5)
            for _ in range(5):
                optimizer.zero_grad()
                (model(x) ** 2).mean().backward()
                optimizer.step()
            trajectories.append([p.detach().numpy().copy() for p in model.parameters()])
    for fused, reference in zip(*trajectories):
        np.testing.assert_array_equal(fused, reference)
