"""Partition invariants (Eq. 7-9) for every chunk size of a 16-frame chunked region, with and without a reference
frame. With K = 1 the buffer is B = K + 16 = 17 frames, so that every c in {1, 2, 4, 8, 16} divides B - K."""
import jax
import numpy as np
import pytest

from streamdit_jax.partition import (ChunkSizeMix, NoiseSchedule, Partition, chunk_tau, micro_step_table,
                                     mixed_chunk_tau)

CASES = [(K, c, s) for K in (0, 1) for c in (1, 2, 4, 8, 16) for s in (1, 3)]
SCHEDULES = [NoiseSchedule(), NoiseSchedule("power", 2.0), NoiseSchedule("shift", 3.0)]


def part(K, c, s):
    return Partition.from_buffer(K + 16, c, s, K)


@pytest.mark.parametrize("K,c,s", CASES)
@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.kind)
def test_micro_step_tables_are_monotone(K, c, s, schedule):
    p = part(K, c, s)
    t = micro_step_table(p, schedule)
    assert t.tau_now.shape == (s, p.B)
    assert np.all(t.tau_next >= t.tau_now)  # every frame only gets cleaner
    assert np.all(np.diff(t.tau_now, axis=1) <= 0)  # cleanest at the old end, noisiest at the new end
    assert np.all(t.tau_now[1:] == t.tau_next[:-1])  # micro steps chain
    assert np.all(t.tau_now[:, :K] == 1) and np.all(t.tau_next[:, :K] == 1)  # references stay clean


@pytest.mark.parametrize("K,c,s", CASES)
def test_each_macro_step_moves_each_chunk_by_one_nth_of_progress(K, c, s):
    p = part(K, c, s)
    t = micro_step_table(p)
    moved = t.u_next[-1, K:] - t.u_now[0, K:]
    np.testing.assert_allclose(moved, 1.0 / p.N, rtol=1e-6)
    # all c frames of a chunk share one level
    levels = t.u_now[:, K:].reshape(s, p.N, c)
    assert np.all(levels == levels[..., :1])


@pytest.mark.parametrize("K,c,s", CASES)
@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.kind)
def test_a_frame_gets_exactly_T_euler_steps_from_entering_to_leaving(K, c, s, schedule):
    p = part(K, c, s)
    t = micro_step_table(p, schedule)
    slot = p.B - 1  # a frame enters at the newest slot as pure noise
    taus, steps = [float(t.tau_now[0, slot])], 0
    while True:
        for m in range(p.s):
            assert t.tau_now[m, slot] == pytest.approx(taus[-1])  # continuity across shifts
            taus.append(float(t.tau_next[m, slot]))
            steps += 1
        if slot - K < c:  # in the oldest chunk: popped after this macro step
            break
        slot -= c  # the buffer shifts by one chunk
    assert steps == p.T
    assert taus[0] == 0.0 and taus[-1] == pytest.approx(1.0)
    assert np.all(np.diff(taus) > 0)


def test_uniform_and_diagonal_are_special_cases():
    u = Partition.uniform(16, steps=32)
    assert (u.K, u.N, u.c, u.s, u.T) == (0, 1, 16, 32, 32)
    d = Partition.diagonal(16)
    assert (d.N, d.c, d.s, d.T) == (16, 1, 1, 16)
    t = micro_step_table(u)
    assert np.all(t.tau_now == t.tau_now[:, :1])  # T2V: every frame at the same level


@pytest.mark.parametrize("kwargs,needle", [
    (dict(buffer_len=16, chunk_size=3), "c=3"),
    (dict(buffer_len=16, chunk_size=4, steps_per_chunk=0), "s=0"),
    (dict(buffer_len=16, chunk_size=4, reference_frames=16), "reference_frames=16"),
    (dict(buffer_len=17, chunk_size=2, reference_frames=0), "c=2"),
])
def test_invalid_partitions_raise_value_errors_naming_the_values(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        Partition.from_buffer(**kwargs)


def test_buffer_length_mismatch_names_both_lengths():
    with pytest.raises(ValueError, match=r"buffer length 12 .* B = K \+ N\*c = 16"):
        Partition(0, 4, 4, 1).check_buffer_len(12)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(chunk_sizes=(1, 3)), r"\[3\]"),
    (dict(chunk_sizes=(1, 2), probabilities=(0.5, 0.6)), "probabilities"),
    (dict(chunk_sizes=()), "empty"),
])
def test_invalid_chunk_size_sets_raise_value_errors_naming_them(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        ChunkSizeMix(16, **kwargs)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.kind)
def test_schedules_are_monotone_maps_of_the_unit_interval(schedule):
    u = np.linspace(0, 1, 101)
    g = schedule(u)
    assert g[0] == 0 and g[-1] == pytest.approx(1.0) and np.all(np.diff(g) > 0)


@pytest.mark.parametrize("K,c", [(0, 1), (0, 4), (1, 2), (0, 16)])
def test_eq8_training_tau_lies_in_each_chunks_interval(K, c):
    p = part(K, c, 1)
    tau = np.asarray(chunk_tau(jax.random.key(0), p, 512))
    assert np.all(tau[:, :K] == 1)
    per_chunk = tau[:, K:].reshape(512, p.N, c)
    assert np.all(per_chunk == per_chunk[..., :1])
    lo = (p.N - 1 - np.arange(p.N)) / p.N
    assert np.all(per_chunk[..., 0] >= lo - 1e-6) and np.all(per_chunk[..., 0] <= lo + 1 / p.N + 1e-6)
    # the draws cover each interval (not stuck at an end)
    spread = per_chunk[..., 0].max(0) - per_chunk[..., 0].min(0)
    assert np.all(spread > 0.8 / p.N)


def test_mixed_training_draws_chunk_sizes_with_their_probabilities():
    mix = ChunkSizeMix(16, (1, 4, 16), (0.2, 0.3, 0.5))
    tau, sizes = mixed_chunk_tau(jax.random.key(1), mix, 4000)
    tau, sizes = np.asarray(tau), np.asarray(sizes)
    freq = [np.mean(sizes == c) for c in (1, 4, 16)]
    np.testing.assert_allclose(freq, [0.2, 0.3, 0.5], atol=0.03)
    for c in (1, 4, 16):  # every example's tau has the chunk structure of its drawn c
        rows = tau[sizes == c].reshape(-1, 16 // c, c)
        assert np.all(rows == rows[..., :1])
        assert np.all(np.diff(rows[..., 0], axis=1) <= 0)


def test_t2v_allowed_false_never_draws_plain_t2v_and_renormalises_the_other_sizes():
    mix = ChunkSizeMix(16, (1, 4, 16), (0.2, 0.3, 0.5))
    allowed = np.arange(4000) % 2 == 0  # even examples may be T2V, odd ones may not
    _, sizes = mixed_chunk_tau(jax.random.key(2), mix, 4000, t2v_allowed=allowed)
    sizes = np.asarray(sizes)
    banned, free = sizes[~allowed], sizes[allowed]
    assert not np.any(banned == 16)
    np.testing.assert_allclose([np.mean(banned == c) for c in (1, 4)], [0.4, 0.6], atol=0.04)
    np.testing.assert_allclose([np.mean(free == c) for c in (1, 4, 16)], [0.2, 0.3, 0.5], atol=0.04)
    # with nothing else to draw, refusing T2V is an error (not a silent draw of a zero-probability size)
    for bad in (ChunkSizeMix(16, (2, 16), (0.0, 1.0)), ChunkSizeMix(16, (16,)), ChunkSizeMix(16, (1, 4))):
        with pytest.raises(ValueError, match="refusing T2V examples needs the T2V chunk size B-K=16"):
            mixed_chunk_tau(jax.random.key(2), bad, 4, t2v_allowed=allowed[:4])
