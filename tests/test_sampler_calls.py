"""What the sampler asks the velocity model, call by call, on a field where Euler is NOT exact.

The oracle streams of test_buffer.py use the exact straight-path field, on which one Euler step from anywhere lands
on the target: they see the order of the frames and that a popped frame has reached tau = 1, but not WHICH levels a
frame was stepped through, nor which trajectory state the stream start handed each chunk, nor the pushed noise. Here
the denoise_fn records every call (phase, stream frame index of each slot, tau, x) through an ordered
``jax.debug.callback`` and returns ``v = a_f cos(3 tau) - x (1 + tau) / 2`` (a_f a fixed random latent per stream
frame): its Euler result depends on every step size, so each frame's path is checked against an independent numpy
re-implementation of the schedule (tau_k = gamma(k/T), k = 0..T; STREAMDIT.md Sec. 3 and 6).
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from streamdit_jax.partition import NoiseSchedule, Partition
from streamdit_jax.sampling.buffer import make_buffer_step, make_stream_start

FRAME = (2, 2, 1)  # H, W, C of the recorded latent frames
T2V, STREAM = 0, 1  # the phase a call was made in (start's T2V pass or a buffer step)

# (buffer length, chunk size c, micro steps s, reference frames K), schedule
CASES = [
    ((8, 2, 2, 0), NoiseSchedule()),
    ((8, 2, 2, 0), NoiseSchedule("shift", 3.0)),
    ((9, 4, 3, 1), NoiseSchedule("power", 1.5)),  # K = 1 reference frame, N = 2
    ((6, 1, 1, 0), NoiseSchedule()),  # diagonal
]
IDS = ["c2s2", "c2s2-shift", "K1c4s3-power", "diagonal"]


def gamma_np(schedule: NoiseSchedule, u):
    """The noise schedules of STREAMDIT.md Eq. 9, written again in float64 numpy."""
    u = np.asarray(u, np.float64)
    if schedule.kind == "linear":
        return u
    if schedule.kind == "power":
        return u ** schedule.param
    return u / (u + schedule.param * (1.0 - u))


def field_np(x, tau, a):
    """The velocity field in numpy: per frame, nonlinear in tau, linear in x (Euler is not exact on it)."""
    return a * np.cos(3.0 * tau) - 0.5 * x * (1.0 + tau)


def euler_path_np(x, a, taus):
    """States [len(taus)] of Euler from x over the levels ``taus`` (float64)."""
    path = [np.asarray(x, np.float64)]
    for t0, t1 in zip(taus[:-1], taus[1:]):
        path.append(path[-1] + field_np(path[-1], t0, a) * (t1 - t0))
    return path


class Call(NamedTuple):
    phase: int
    frames: np.ndarray  # [B] stream frame index of every slot
    tau: np.ndarray  # [B] (batch 1)
    x: np.ndarray  # [B, H, W, C]


def recording_field(calls: list):
    def record(phase, frames, tau, x):
        calls.append(Call(int(phase), np.asarray(frames), np.asarray(tau)[0], np.asarray(x)[0]))

    def denoise(params, x, tau, cond, frames):
        del cond
        jax.debug.callback(record, params["phase"], frames, tau, x, ordered=True)
        t = tau[:, :, None, None, None]
        return params["a"][frames][None] * jnp.cos(3.0 * t) - 0.5 * x * (1.0 + t)

    return denoise


class Run(NamedTuple):
    partition: Partition
    schedule: NoiseSchedule
    a: np.ndarray  # [frames, H, W, C] the field's per-frame latent
    calls: list
    filled: np.ndarray  # [B, H, W, C] the buffer the stream start returned
    refs: np.ndarray  # [K, H, W, C] the start's emitted reference frames
    states: list  # [steps] buffer latents after every macro step
    chunks: list  # [steps] emitted chunks [c, H, W, C]

    def grid(self):
        """tau_k = gamma(k/T), k = 0..T: the levels every frame must pass, in float64."""
        return gamma_np(self.schedule, np.arange(self.partition.T + 1) / self.partition.T)

    def emitted(self):
        """[frames] every emitted frame in stream order: the K references, then the chunks."""
        return np.concatenate([self.refs] + self.chunks, axis=0)

    def noise(self, f):
        """The pure noise stream frame f started from: the T2V pass's first state for f < B, else the chunk that
        was pushed with it (the buffer after the macro step that appended it)."""
        p = self.partition
        if f < p.B:
            first = [c for c in self.calls if c.phase == T2V][0]
            return first.x[f]
        n = (f - p.B) // p.c  # appended by macro step n, at slot B - c + (f - B) % c
        return self.states[n][p.B - p.c + (f - p.B) % p.c]


@functools.lru_cache(maxsize=None)
def run_stream(case, schedule, steps=None, seed=0) -> Run:
    buffer_len, c, s, K = case
    partition = Partition.from_buffer(buffer_len, c, s, K)
    steps = 2 * partition.N + 1 if steps is None else steps
    calls: list = []
    denoise = recording_field(calls)
    a = np.random.default_rng(seed + 100).normal(size=(partition.B + (steps + 1) * c,) + FRAME).astype(np.float32)
    start = make_stream_start(denoise, partition, schedule)
    step = make_buffer_step(denoise, partition, schedule, donate=False)
    cond = jnp.zeros((1, 1))
    state, refs = start({"a": jnp.asarray(a), "phase": jnp.int32(T2V)}, jax.random.key(seed),
                        jnp.zeros((1, partition.B) + FRAME), cond)
    filled = np.asarray(state.latents)[0]
    states, chunks = [], []
    for _ in range(steps):
        state, chunk = step({"a": jnp.asarray(a), "phase": jnp.int32(STREAM)}, state, cond)
        states.append(np.asarray(state.latents)[0])
        chunks.append(np.asarray(chunk)[0])
    jax.effects_barrier()
    return Run(partition, schedule, a, list(calls), filled, np.asarray(refs)[0], states, chunks)


def start_level(p: Partition, f: int) -> int:
    """Levels k a stream frame has already been through when the stream's first macro step starts: chunk j of the
    start buffer sits at k = (N-1-j)*s (Sec. 6); frames entering later as noise at 0; references at T."""
    if f >= p.B:
        return 0
    if f < p.K:
        return p.T
    return (p.N - 1 - (f - p.K) // p.c) * p.s


@pytest.mark.parametrize("case,schedule", CASES, ids=IDS)
def test_every_stream_frame_is_stepped_through_exactly_the_tau_grid_in_order(case, schedule):
    """Each frame, while it is denoised in the stream, is seen at tau_k = gamma(k/T) for k = its start level .. T-1,
    once each and in order; reference slots are always at tau = 1; T calls for the start, s per macro step."""
    run = run_stream(case, schedule)
    p, grid = run.partition, run.grid()
    stream = [c for c in run.calls if c.phase == STREAM]
    assert len([c for c in run.calls if c.phase == T2V]) == p.T
    assert len(stream) == len(run.chunks) * p.s
    seen: dict[int, list] = {}
    for call in stream:
        np.testing.assert_array_equal(call.tau[:p.K], 1.0)
        for slot in range(p.K, p.B):
            seen.setdefault(int(call.frames[slot]), []).append(float(call.tau[slot]))
    emitted_up_to = p.K + len(run.chunks) * p.c  # frames whose whole stream life was recorded
    checked = 0
    for f in range(p.K, emitted_up_to):
        expected = grid[start_level(p, f):p.T]
        np.testing.assert_allclose(seen[f], expected, rtol=0, atol=1e-6,
                                   err_msg=f"frame {f}: tau levels seen while denoised in the stream")
        checked += 1
    assert checked >= 2 * p.N * p.c


@pytest.mark.parametrize("case,schedule", CASES, ids=IDS)
def test_each_chunk_leaves_the_buffer_exactly_one_euler_step_after_its_last_call_with_tau_reaching_1(case, schedule):
    """The emitted chunk is x_last + v(x_last, tau_last) (1 - tau_last), with (x_last, tau_last) the recorded last
    call for that frame: the final micro step ends at tau = 1 and the popped chunk is its result."""
    run = run_stream(case, schedule)
    p = run.partition
    stream = [c for c in run.calls if c.phase == STREAM]
    for n, chunk in enumerate(run.chunks):
        last = stream[(n + 1) * p.s - 1]
        for i in range(p.c):
            slot = p.K + i
            f = int(last.frames[slot])
            assert f == n * p.c + p.K + i
            tau = float(last.tau[slot])
            np.testing.assert_allclose(tau, run.grid()[p.T - 1], atol=1e-6)
            expected = last.x[slot] + field_np(last.x[slot], tau, run.a[f]) * (1.0 - tau)
            np.testing.assert_allclose(chunk[i], expected, rtol=1e-5, atol=1e-5, err_msg=f"macro step {n} frame {f}")


@pytest.mark.parametrize("case,schedule", CASES, ids=IDS)
def test_emitted_frames_equal_an_independent_numpy_euler_integration_over_the_full_grid(case, schedule):
    """Every emitted frame, the K T2V references and the start's chunks included, equals numpy Euler from its own
    entering noise over tau_0 .. tau_T: the start hands over the T2V state at the right step and the stream
    continues it with no level skipped or repeated (on this field one level off changes the frame, guarded)."""
    run = run_stream(case, schedule)
    grid = run.grid()
    emitted = run.emitted()
    for f in range(len(emitted)):
        path = euler_path_np(run.noise(f), run.a[f], grid)
        np.testing.assert_allclose(emitted[f], path[-1], rtol=1e-4, atol=1e-5, err_msg=f"emitted frame {f}")
        # guard: the field sees step sizes; a path that repeats one level lands elsewhere
        repeated = euler_path_np(path[1], run.a[f], grid)  # level 0 taken twice
        assert np.abs(repeated[-1] - path[-1]).max() > 1e-3


@pytest.mark.parametrize("case,schedule", CASES, ids=IDS)
def test_stream_start_fills_chunk_j_with_the_t2v_state_after_N_minus_1_minus_j_times_s_steps(case, schedule):
    """Sec. 6: the T2V pass is T calls at tau_k for all B frames, its k-th call's x is numpy's T2V state k; chunk j of
    the filled buffer is that trajectory's state (N-1-j)*s, the K reference slots its final state T."""
    run = run_stream(case, schedule)
    p, grid = run.partition, run.grid()
    t2v = [c for c in run.calls if c.phase == T2V]
    noise = t2v[0].x
    frames_a = run.a[:p.B]
    trajectory = euler_path_np(noise, frames_a, grid)  # [T+1] states of all B frames
    for k, call in enumerate(t2v):
        np.testing.assert_array_equal(call.frames, np.arange(p.B))
        np.testing.assert_allclose(call.tau, np.full(p.B, grid[k]), atol=1e-6, err_msg=f"T2V call {k}")
        np.testing.assert_allclose(call.x, trajectory[k], rtol=1e-4, atol=1e-5, err_msg=f"T2V call {k}")
    np.testing.assert_allclose(run.filled[:p.K], trajectory[p.T][:p.K], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(run.refs, trajectory[p.T][:p.K], rtol=1e-4, atol=1e-5)
    for j in range(p.N):
        rows = slice(p.K + j * p.c, p.K + (j + 1) * p.c)
        k = (p.N - 1 - j) * p.s
        np.testing.assert_allclose(run.filled[rows], trajectory[k][rows], rtol=1e-4, atol=1e-5,
                                   err_msg=f"chunk {j}: expected the T2V state after {k} steps")
        for other in {k - 1, k + 1} & set(range(p.T + 1)):  # guard: neighbouring states are distinguishable
            assert np.abs(trajectory[other][rows] - trajectory[k][rows]).max() > 1e-3


@pytest.mark.parametrize("case,schedule", CASES, ids=IDS)
def test_first_buffer_step_continues_the_t2v_grid_where_the_fill_took_each_chunk(case, schedule):
    """The first stream call sees chunk j at exactly the (tau, x) of the T2V pass's call (N-1-j)*s: the level after
    the last one T2V gave that state, neither skipped nor repeated. References: the T2V's final state at tau = 1."""
    run = run_stream(case, schedule)
    p = run.partition
    t2v = [c for c in run.calls if c.phase == T2V]
    first = [c for c in run.calls if c.phase == STREAM][0]
    np.testing.assert_array_equal(first.frames, np.arange(p.B))
    np.testing.assert_array_equal(first.x[:p.K], run.refs)
    np.testing.assert_array_equal(first.tau[:p.K], 1.0)
    for j in range(p.N):
        rows = slice(p.K + j * p.c, p.K + (j + 1) * p.c)
        k = (p.N - 1 - j) * p.s
        np.testing.assert_allclose(first.tau[rows], t2v[k].tau[rows], atol=1e-6, err_msg=f"chunk {j} level")
        np.testing.assert_allclose(first.x[rows], t2v[k].x[rows], rtol=1e-5, atol=1e-6,
                                   err_msg=f"chunk {j}: x is not the state T2V had at level {k}")


def test_every_macro_step_pushes_fresh_standard_normal_noise():
    """The chunk entering after each macro step is new N(0, 1) noise: uncorrelated with every earlier pushed chunk
    and with every chunk of the start's noise, and its values have mean ~0 and std ~1 over the stream."""
    frame = (8, 8, 4)
    partition = Partition.from_buffer(8, 2, 1)
    calls: list = []
    denoise = recording_field(calls)
    steps = 16
    a = np.zeros((partition.B + (steps + 1) * partition.c,) + frame, np.float32)
    start = make_stream_start(denoise, partition)
    step = make_buffer_step(denoise, partition, donate=False)
    cond = jnp.zeros((1, 1))
    state, _ = start({"a": jnp.asarray(a), "phase": jnp.int32(T2V)}, jax.random.key(3),
                     jnp.zeros((1, partition.B) + frame), cond)
    pushed = []
    for _ in range(steps):
        state, _ = step({"a": jnp.asarray(a), "phase": jnp.int32(STREAM)}, state, cond)
        pushed.append(np.asarray(state.latents)[0, -partition.c:].ravel())
    jax.effects_barrier()
    initial = calls[0].x.reshape(partition.N, -1)  # the start's noise, chunk by chunk
    corr = lambda u, v: float(np.corrcoef(u, v)[0, 1])
    for n, chunk in enumerate(pushed):
        for m in range(n):
            assert abs(corr(chunk, pushed[m])) < 0.25, f"macro step {n} pushed the noise of step {m} again"
        for j, start_chunk in enumerate(initial):
            assert abs(corr(chunk, start_chunk)) < 0.25, f"macro step {n} pushed the start's noise of chunk {j}"
    values = np.concatenate(pushed)
    assert abs(values.mean()) < 0.08 and abs(values.std() - 1.0) < 0.08, (values.mean(), values.std())
