"""Buffer partitions, noise schedules and per-frame noise levels: paper Eq. 7-9, Table 1, Fig. 2.

A buffer of ``B = K + N*c`` frames holds K clean reference frames (oldest end, index 0..K-1) followed by N chunks of
c frames; chunk ``j = 0`` is the oldest (cleanest), ``j = N-1`` the newest (noisiest). Each chunk stays in place for
``s`` Euler micro steps, so a frame gets ``T = s*N`` steps from entering to leaving (Eq. 7).

Progress ``u`` in [0, 1] (ours): chunk j spans ``u in [(N-1-j)/N, (N-j)/N]``; at micro step m it is at
``u = ((N-1-j)*s + m)/T``. A noise schedule ``gamma`` maps progress to the flow-matching time ``tau = gamma(u)``
(Eq. 9; the paper's default is ``gamma(u) = u``).
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

SCHEDULE_KINDS = ("linear", "power", "shift")


@dataclasses.dataclass(frozen=True)
class NoiseSchedule:
    """Monotone map gamma: [0,1] -> [0,1] with gamma(0)=0, gamma(1)=1 (Eq. 9).

    kinds: ``linear`` (gamma(u) = u, the paper's); ``power`` (gamma(u) = u**param: param > 1 spends more steps at high
    noise); ``shift`` (SD3-style timestep shift, gamma(u) = u / (u + param*(1-u)): param > 1 spends more steps at high
    noise).
    """

    kind: str = "linear"
    param: float = 1.0

    def __post_init__(self):
        if not isinstance(self.kind, str) or self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"schedule.kind={self.kind!r} is unknown; valid kinds: {SCHEDULE_KINDS}")
        ok = (isinstance(self.param, (int, float, np.integer, np.floating)) and not isinstance(self.param, bool)
              and math.isfinite(self.param) and self.param > 0)
        if not ok:
            raise ValueError(f"schedule.param={self.param!r} must be > 0 (a finite number; the exponent of 'power', "
                             f"the shift of 'shift', unused by 'linear', default 1.0)")

    def __call__(self, u):
        xp = jnp if isinstance(u, jax.Array) else np
        if self.kind == "linear":
            return u
        if self.kind == "power":
            return xp.power(u, self.param)
        return u / (u + self.param * (1.0 - u))


@dataclasses.dataclass(frozen=True)
class Partition:
    """Partition(K, N, c, s) of a stream buffer (Eq. 7): ``B = K + N*c`` frames, ``T = s*N`` steps per frame."""

    K: int
    N: int
    c: int
    s: int

    def __post_init__(self):
        for name, value, low in (("K", self.K, 0), ("N", self.N, 1), ("c", self.c, 1), ("s", self.s, 1)):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"Partition {name}={value!r} is invalid: {name} must be an integer >= {low} "
                                 f"(got Partition(K={self.K}, N={self.N}, c={self.c}, s={self.s}))")

    @property
    def B(self) -> int:
        """Buffer length in frames."""
        return self.K + self.N * self.c

    @property
    def T(self) -> int:
        """Euler steps a frame receives from entering the buffer (pure noise) to leaving it (clean)."""
        return self.s * self.N

    @classmethod
    def from_buffer(cls, buffer_len: int, chunk_size: int, steps_per_chunk: int = 1, reference_frames: int = 0):
        """Builds the partition of a buffer of ``buffer_len`` frames into chunks of ``chunk_size``."""
        free = buffer_len - reference_frames
        if reference_frames < 0 or free < 1:
            raise ValueError(f"reference_frames={reference_frames} must be in [0, buffer_len={buffer_len})")
        if chunk_size < 1 or free % chunk_size:
            raise ValueError(f"chunk size c={chunk_size} must divide B-K={buffer_len}-{reference_frames}={free}; "
                             f"valid chunk sizes: {divisors(free)}")
        return cls(K=reference_frames, N=free // chunk_size, c=chunk_size, s=steps_per_chunk)

    @classmethod
    def uniform(cls, buffer_len: int, steps: int, reference_frames: int = 0):
        """Plain text-to-video as a partition: one chunk of all non-reference frames, ``s = T = steps``."""
        return cls.from_buffer(buffer_len, buffer_len - reference_frames, steps, reference_frames)

    @classmethod
    def diagonal(cls, buffer_len: int, reference_frames: int = 0):
        """FIFO-Diffusion-style diagonal denoising: c = 1, s = 1, T = B - K."""
        return cls.from_buffer(buffer_len, 1, 1, reference_frames)

    def check_buffer_len(self, buffer_len: int) -> None:
        if buffer_len != self.B:
            raise ValueError(f"buffer length {buffer_len} does not match {self} whose B = K + N*c = {self.B}")

    def chunk_index(self) -> np.ndarray:
        """[B] int: the chunk j of every buffer frame (0 = oldest), -1 for the K reference frames."""
        idx = np.full((self.B,), -1, np.int32)
        idx[self.K:] = np.arange(self.N * self.c) // self.c
        return idx

    def frame_mask(self) -> np.ndarray:
        """[B] float: 1 for frames that are denoised (and carry loss), 0 for reference frames."""
        return (self.chunk_index() >= 0).astype(np.float32)

    def progress(self, micro_step) -> np.ndarray:
        """[B] progress u of every frame at micro step ``micro_step`` (0..s) of a macro step; references at 1."""
        j = self.chunk_index()
        u = ((self.N - 1 - j) * self.s + np.asarray(micro_step, np.float64)) / self.T
        return np.where(j >= 0, u, 1.0)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


class MicroStepTable(NamedTuple):
    """Per-micro-step, per-frame noise levels of one macro step (the sampler as data: scanned over, axis 0 = s)."""

    u_now: np.ndarray  # [s, B] progress before each micro step
    u_next: np.ndarray  # [s, B] progress after it
    tau_now: np.ndarray  # [s, B] gamma(u_now)
    tau_next: np.ndarray  # [s, B] gamma(u_next)


def micro_step_table(partition: Partition, schedule: NoiseSchedule = NoiseSchedule()) -> MicroStepTable:
    """Tables of (tau before, tau after) for each of the s micro steps of a macro step, per frame.

    Reference frames stay at tau = 1 (dtau = 0). Chunk 0 reaches tau = 1 after the last micro step; every other chunk
    ends where the next-older position starts, so shifting the buffer by one chunk keeps each frame's progress.
    """
    steps = np.arange(partition.s)
    u_now = np.stack([partition.progress(m) for m in steps])
    u_next = np.stack([partition.progress(m + 1) for m in steps])
    f32 = lambda a: np.asarray(a, np.float32)
    return MicroStepTable(f32(u_now), f32(u_next), f32(schedule(u_now)), f32(schedule(u_next)))


def chunk_tau(rng: jax.Array, partition: Partition, batch: int,
              schedule: NoiseSchedule = NoiseSchedule()) -> jax.Array:
    """Eq. 8 for one chunk size: per chunk j, ``u ~ U[(N-1-j)/N, (N-j)/N]``, ``tau = gamma(u)``; refs at 1.

    (The paper counts chunks i = 1..N from the noisy end: i = N - j.) Returns [batch, B] float32.
    """
    return _chunk_tau_from_uniform(jax.random.uniform(rng, (batch, partition.N)), partition, schedule)


def _chunk_tau_from_uniform(r: jax.Array, partition: Partition, schedule: NoiseSchedule) -> jax.Array:
    j = partition.chunk_index()
    safe_j = np.maximum(j, 0)
    u = (partition.N - 1 - safe_j + r[:, safe_j]) / partition.N  # [batch, B]
    return jnp.where(j >= 0, schedule(u), 1.0).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class ChunkSizeMix:
    """Mixed training (Sec. 3.2): a chunk size per example drawn from ``chunk_sizes`` with ``probabilities``.

    Including c = B - K (plain T2V) keeps the model a text-to-video model, which also starts a stream (Sec. 6).
    """

    buffer_len: int
    chunk_sizes: tuple[int, ...] = (1, 2, 4, 8, 16)
    probabilities: tuple[float, ...] | None = None  # None: uniform (ours; the paper gives none)
    reference_frames: int = 0

    def __post_init__(self):
        if not self.chunk_sizes:
            raise ValueError("chunk_sizes must not be empty")
        free = self.buffer_len - self.reference_frames
        bad = [c for c in self.chunk_sizes if not isinstance(c, (int, np.integer)) or c < 1 or free % c]
        if bad:
            raise ValueError(f"chunk sizes {bad} in chunk_sizes={tuple(self.chunk_sizes)} do not divide "
                             f"B-K={self.buffer_len}-{self.reference_frames}={free}; valid: {divisors(max(free, 1))}")
        if len(set(self.chunk_sizes)) != len(self.chunk_sizes):
            raise ValueError(f"chunk_sizes={tuple(self.chunk_sizes)} has duplicates")
        if self.probabilities is not None:
            p = np.asarray(self.probabilities, np.float64)
            if p.shape != (len(self.chunk_sizes),) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
                raise ValueError(f"probabilities={tuple(self.probabilities)} must be {len(self.chunk_sizes)} "
                                 f"non-negative numbers summing to 1 (one per chunk size {tuple(self.chunk_sizes)})")

    def partitions(self, steps_per_chunk: int = 1) -> list[Partition]:
        return [Partition.from_buffer(self.buffer_len, c, steps_per_chunk, self.reference_frames)
                for c in self.chunk_sizes]

    def probs(self) -> np.ndarray:
        if self.probabilities is None:
            return np.full((len(self.chunk_sizes),), 1.0 / len(self.chunk_sizes), np.float32)
        return np.asarray(self.probabilities, np.float32)

    def check_t2v_can_be_refused(self) -> None:
        """ValueError unless the T2V size B - K is in the mix beside another size with a probability > 0: what an
        example refused T2V (``mixed_chunk_tau``'s ``t2v_allowed`` False) draws from."""
        t2v = self.buffer_len - self.reference_frames
        others = [p for c, p in zip(self.chunk_sizes, self.probs()) if c != t2v]
        if t2v not in self.chunk_sizes or not others or sum(others) <= 0:
            raise ValueError(f"refusing T2V examples needs the T2V chunk size B-K={t2v} and at least one other with "
                             f"a probability > 0 (chunk_sizes={tuple(self.chunk_sizes)}, probabilities="
                             f"{self.probabilities}): examples refused T2V draw among the others")

    def frame_mask(self) -> np.ndarray:
        return self.partitions()[0].frame_mask()


def mixed_chunk_tau(rng: jax.Array, mix: ChunkSizeMix, batch: int,
                    schedule: NoiseSchedule = NoiseSchedule(),
                    t2v_allowed: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Mixed training noise levels (Eq. 8 with c drawn per example). Returns (tau [batch, B], chunk size [batch]).

    t2v_allowed: optional bool [batch]; where False the example never gets c = B - K (plain T2V): its chunk size is
    drawn from the other sizes, their probabilities renormalised. Used to keep T2V examples to windows whose caption
    holds at every frame (TrainConfig.t2v_steady_windows).
    """
    pick_rng, u_rng = jax.random.split(rng)
    probs = jnp.asarray(mix.probs())
    if t2v_allowed is None:
        choice = jax.random.choice(pick_rng, len(mix.chunk_sizes), (batch,), p=probs)
    else:
        mix.check_t2v_can_be_refused()  # else every refused example's log-probabilities are -inf (draws index 0)
        is_t2v = jnp.asarray(mix.chunk_sizes) == mix.buffer_len - mix.reference_frames  # [n]
        keep = jnp.asarray(t2v_allowed, bool)[:, None] | ~is_t2v[None, :]  # [batch, n]
        choice = jax.random.categorical(pick_rng, jnp.log(jnp.where(keep, probs[None, :], 0.0)), axis=1)
    r = jax.random.uniform(u_rng, (batch, mix.buffer_len))  # one draw per chunk; N <= B
    candidates = jnp.stack([_chunk_tau_from_uniform(r, p, schedule) for p in mix.partitions()])  # [n, batch, B]
    tau = jnp.take_along_axis(candidates, choice[None, :, None], axis=0)[0]
    return tau, jnp.asarray(mix.chunk_sizes, jnp.int32)[choice]
