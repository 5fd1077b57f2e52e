"""The jitted buffer step: oracle streams, scan == unrolled loop, one trace, guidance in one batched call."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from helpers import tiny_model
from streamdit_jax import flow
from streamdit_jax.partition import NoiseSchedule, Partition, micro_step_table
from streamdit_jax.sampling.buffer import (BufferState, make_buffer_step, make_stream_start, model_denoise_fn,
                                          python_loop_buffer_step)
from streamdit_jax.flow import gaussian_noise

FRAME = (3, 2, 2)  # H, W, C of the oracle's latent frames


def oracle_denoise(params, x, tau, cond, frames):
    """The exact velocity of the straight path towards the target video's frames (STREAMDIT.md Eq. 3)."""
    return flow.oracle_velocity(x, tau, params["target"][frames][None])


def stream_oracle(partition, schedule, target, num_frames, seed=0):
    start = make_stream_start(oracle_denoise, partition, schedule)
    step = make_buffer_step(oracle_denoise, partition, schedule)
    params, cond = {"target": target}, jnp.zeros((1, 1))
    state, refs = start(params, jax.random.key(seed), jnp.zeros((1, partition.B) + FRAME), cond)
    out = [refs]
    while sum(o.shape[1] for o in out) < num_frames:
        state, chunk = step(params, state, cond)
        out.append(chunk)
    return np.concatenate([np.asarray(o) for o in out], axis=1)[0]


@pytest.mark.parametrize("K", [0, 1])
@pytest.mark.parametrize("c", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("s", [1, 3])
def test_oracle_stream_reproduces_the_target_video_in_order(K, c, s):
    partition = Partition.from_buffer(K + 16, c, s, K)
    num_frames = 3 * partition.B + c
    target = gaussian_noise(jax.random.key(42), (num_frames + partition.B,) + FRAME)
    frames = stream_oracle(partition, NoiseSchedule(), target, num_frames)
    np.testing.assert_allclose(frames[:num_frames], np.asarray(target[:num_frames]), atol=2e-4, rtol=1e-4)


def test_oracle_stream_reproduces_the_target_video_under_a_nonlinear_schedule():
    """Frames still end at tau = 1 in order under the shift schedule; the levels on the way are checked in
    test_sampler_calls (the oracle cannot see them)."""
    partition = Partition.from_buffer(16, 4, 2)
    target = gaussian_noise(jax.random.key(7), (80,) + FRAME)
    frames = stream_oracle(partition, NoiseSchedule("shift", 3.0), target, 60)
    np.testing.assert_allclose(frames[:60], np.asarray(target[:60]), atol=2e-4, rtol=1e-4)


def test_a_stream_with_the_wrong_oracle_target_does_not_reproduce_it():
    """Guards the oracle test itself: a velocity field towards other frames gives other frames."""
    partition = Partition.from_buffer(16, 2, 1)
    target = gaussian_noise(jax.random.key(42), (80,) + FRAME)
    shifted = jnp.roll(target, 1, axis=0)  # the field aims one frame off
    frames = stream_oracle(partition, NoiseSchedule(), shifted, 48)
    assert np.abs(frames[1:48] - np.asarray(target[1:48])).max() > 0.5


def _model_setup(partition, batch=1, seed=0, **overrides):
    model = tiny_model(seed, **overrides)
    graphdef, params = nnx.split(model)
    text, mask = model.encode_text(jnp.asarray(model.tokenize(["a red circle moving left"] * batch)))
    x = gaussian_noise(jax.random.key(seed), (batch, partition.B, 8, 8, 4))
    state = BufferState(x, jnp.asarray(partition.progress(0), jnp.float32), jnp.zeros((), jnp.int32),
                        jax.random.key(seed + 1))
    return model, graphdef, params, (text, mask), state


def test_scanned_buffer_step_equals_an_unrolled_loop_of_micro_steps():
    partition = Partition.from_buffer(8, 2, 3, reference_frames=0)
    model, graphdef, params, cond, state = _model_setup(partition)
    table = micro_step_table(partition, NoiseSchedule("power", 1.5))
    x = state.latents
    for m in range(partition.s):  # the unrolled reference, one model call per micro step
        tau = jnp.broadcast_to(table.tau_now[m], x.shape[:2])
        x = flow.euler_step(x, model(x, tau, *cond), jnp.broadcast_to(table.tau_next[m] - table.tau_now[m], x.shape[:2]))
    _, noise_rng = jax.random.split(state.rng)
    noise = gaussian_noise(noise_rng, (1, 2, 8, 8, 4))
    expected_buffer = jnp.concatenate([x[:, 2:], noise], axis=1)

    step = make_buffer_step(model_denoise_fn(graphdef), partition, NoiseSchedule("power", 1.5), donate=False)
    new_state, chunk = step(params, state, cond)
    np.testing.assert_allclose(np.asarray(chunk), np.asarray(x[:, :2]), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(new_state.latents), np.asarray(expected_buffer), atol=1e-5, rtol=1e-5)
    assert int(new_state.step) == 1
    # the benchmark's baseline (a Python loop of jitted micro steps) computes the same macro step
    loop_state, loop_chunk = python_loop_buffer_step(model_denoise_fn(graphdef), partition, table)(params, state, cond)
    np.testing.assert_allclose(np.asarray(loop_chunk), np.asarray(chunk), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(loop_state.latents), np.asarray(new_state.latents), atol=1e-5, rtol=1e-5)


def test_buffer_step_traces_once_over_50_macro_steps():
    partition = Partition.from_buffer(8, 2, 2, reference_frames=0)
    _, graphdef, params, cond, state = _model_setup(partition)
    denoise, traces = model_denoise_fn(graphdef), []

    def counting_denoise(*args):
        traces.append(1)  # runs only while tracing
        return denoise(*args)

    step = make_buffer_step(counting_denoise, partition)
    null = jax.tree.map(jnp.zeros_like, cond)
    for i in range(50):
        state, chunk = step(params, state, cond, null, jnp.float32(1.0 + 0.1 * i))  # guidance changes too
    assert len(traces) == 1
    assert int(state.step) == 50 and np.all(np.isfinite(np.asarray(chunk)))


def test_reference_frames_are_the_last_popped_frames_carried_clean():
    partition = Partition.from_buffer(9, 2, 1, reference_frames=1)
    _, graphdef, params, cond, state = _model_setup(partition, window=(0, 2, 2))  # 9 frames: full-frame windows
    step = make_buffer_step(model_denoise_fn(graphdef), partition, donate=False)
    state1, chunk1 = step(params, state, cond)
    np.testing.assert_array_equal(np.asarray(state1.latents[:, :1]), np.asarray(chunk1[:, -1:]))
    state2, _ = step(params, state1, cond)
    assert not np.allclose(np.asarray(state2.latents[:, :1]), np.asarray(state1.latents[:, :1]))


def test_guidance_combines_both_branches_of_one_batched_call():
    partition = Partition.from_buffer(4, 2, 2)
    calls = []

    def denoise(params, x, tau, cond, frames):
        calls.append(x.shape[0])
        return jnp.broadcast_to(cond[:, None, None, None, :], x.shape)  # velocity = the conditioning value

    x = jnp.zeros((1, 4, 1, 1, 1))
    state = BufferState(x, jnp.zeros(4), jnp.zeros((), jnp.int32), jax.random.key(0))
    step = make_buffer_step(denoise, partition, donate=False)
    w = 3.0
    new_state, chunk = step(None, state, jnp.full((1, 1), 2.0), jnp.full((1, 1), 0.5), jnp.float32(w))
    assert calls == [2]  # conditional and unconditional in one batch of 2
    u = 0.5 + w * (2.0 - 0.5)
    table = micro_step_table(partition)
    expected = u * (table.tau_next[-1, :2] - table.tau_now[0, :2])  # the chunk's total dtau over the s steps
    np.testing.assert_allclose(np.asarray(chunk).ravel(), expected, rtol=1e-5)


def test_buffer_step_rejects_a_buffer_of_the_wrong_length():
    partition = Partition.from_buffer(16, 2, 1)
    step = make_buffer_step(oracle_denoise, partition, donate=False)
    state = BufferState(jnp.zeros((1, 12) + FRAME), jnp.zeros(12), jnp.zeros((), jnp.int32), jax.random.key(0))
    with pytest.raises(ValueError, match=r"buffer length 12 does not match .*B = K \+ N\*c = 16"):
        step({"target": jnp.zeros((64,) + FRAME)}, state, jnp.zeros((1, 1)))


def test_buffer_step_with_frames_split_over_a_context_axis_matches_one_device():
    from streamdit_jax import parallel
    partition = Partition.from_buffer(8, 2, 2)
    _, graphdef, params, cond, state = _model_setup(partition, seed=2)
    step = make_buffer_step(model_denoise_fn(graphdef), partition, donate=False)
    single_state, single_chunk = step(params, state, cond)
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 2), ("fsdp", 2), ("context", 2))))
    with parallel.activate(mesh):
        sharded = jax.device_put(params, parallel.state_shardings(params, mesh))
        new_state, chunk = make_buffer_step(model_denoise_fn(graphdef), partition, donate=False)(sharded, state, cond)
    np.testing.assert_allclose(np.asarray(chunk), np.asarray(single_chunk), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(new_state.latents), np.asarray(single_state.latents), atol=1e-4, rtol=1e-4)
