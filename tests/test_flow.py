"""Flow-matching maths (Eq. 1-6) against hand-computed values."""
import jax.numpy as jnp
import numpy as np

from streamdit_jax import flow


def test_eq2_interpolation_matches_hand_computed_value():
    # 0.25 * 2 + (1 - (1 - 0.1) * 0.25) * 1 = 0.5 + 0.775
    x = flow.interpolate(jnp.full((1, 1, 1, 1, 1), 2.0), jnp.ones((1, 1, 1, 1, 1)), jnp.asarray([0.25]), sigma_min=0.1)
    np.testing.assert_allclose(np.asarray(x).ravel(), [1.275], rtol=1e-6)


def test_eq5_uses_each_frames_own_tau_and_one_shared_noise():
    x1 = jnp.asarray([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1, 1)
    x0 = jnp.full((1, 3, 1, 1, 1), -1.0)
    tau = jnp.asarray([[0.0, 0.5, 1.0]])
    x = np.asarray(flow.interpolate(x1, x0, tau, sigma_min=0.0)).ravel()
    # frame 0: pure noise; frame 1: 0.5*2 + 0.5*(-1); frame 2: clean data
    np.testing.assert_allclose(x, [-1.0, 0.5, 3.0], rtol=1e-6)


def test_a_per_frame_tau_row_without_its_batch_axis_is_rejected_not_broadcast_as_per_example():
    import pytest

    x = jnp.zeros((1, 3, 1, 1, 1))
    with pytest.raises(ValueError, match=r"a 1-D tau is one level per example: shape \(1,\)"):
        flow.interpolate(x, x, jnp.asarray([0.0, 0.5, 1.0]))  # a [frames] row: must be [1, 3]


def test_eq3_velocity_target_matches_hand_computed_value():
    v = flow.velocity_target(jnp.asarray(2.0), jnp.asarray(1.0), sigma_min=0.1)
    np.testing.assert_allclose(float(v), 1.1, rtol=1e-6)


def test_eq6_euler_step_moves_each_frame_by_its_own_dtau():
    x = jnp.zeros((1, 2, 1, 1, 1))
    v = jnp.ones((1, 2, 1, 1, 1))
    out = np.asarray(flow.euler_step(x, v, jnp.asarray([[0.1, 0.0]]))).ravel()
    np.testing.assert_allclose(out, [0.1, 0.0], rtol=1e-6)


def test_reference_frames_carry_no_loss():
    target = jnp.zeros((2, 4, 2, 2, 1))
    pred = jnp.ones((2, 4, 2, 2, 1))
    mask = jnp.asarray([0.0, 1.0, 1.0, 1.0])  # frame 0 is a clean reference frame
    base = np.asarray(flow.flow_matching_loss(pred, target, mask))
    np.testing.assert_allclose(base, [1.0, 1.0])
    wild = pred.at[:, 0].set(1e6)  # any error on the reference frame is ignored
    np.testing.assert_allclose(np.asarray(flow.flow_matching_loss(wild, target, mask)), base)
    # ... while the same error on a denoised frame counts
    assert np.all(np.asarray(flow.flow_matching_loss(pred.at[:, 1].set(3.0), target, mask)) > base)


def test_oracle_velocity_recovers_the_straight_path_velocity():
    rng = np.random.default_rng(0)
    x1, x0 = (rng.normal(size=(2, 3, 2, 2, 1)).astype(np.float32) for _ in range(2))
    tau = rng.uniform(size=(2, 3)).astype(np.float32)
    xt = flow.interpolate(x1, x0, tau)
    np.testing.assert_allclose(np.asarray(flow.oracle_velocity(xt, tau, x1)),
                               np.asarray(flow.velocity_target(x1, x0)), rtol=1e-4, atol=1e-5)
