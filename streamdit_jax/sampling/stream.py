"""Streamer: endless video from a StreamDiT with live prompt switches (Sec. 5-6).

The stream starts from the cached uniform T2V trajectory (``make_stream_start``), then calls the ONE jitted
``buffer_step`` forever. ``warmup_frames`` (ours, not the paper's) runs that many frames' macro steps before the
first emitted frame and discards them: with one buffer's worth (B - K frames) every emitted frame entered the buffer
as fresh noise and was denoised by the stream, not taken over from the T2V pass (which, for the bundled model,
ignores the direction word; measured in WORKSPACE.md). A prompt schedule {frame index: prompt} is applied per macro
step: the step that emits the chunk starting at stream frame f denoises with the prompt active at f, so frames
before a switch never change; a ``LivePrompt`` instead takes switches from any thread while streaming. Prompts are
encoded only when they change. Denoising and decoding run on two background threads linked by bounded queues (the
paper runs them on separate threads), so they overlap with each other and with the consumer; the iterator yields
uint8 frame chunks in order.

Arguments are checked when a stream is requested, before anything is compiled (ValueError naming the value and
what is valid): ``check_guidance``, ``check_int`` (num_frames, seed) are the library's rules, shared with
``pretrained.load_streamer`` and the command lines. A prompt longer than the text encoder reads is streamed from its
beginning, with one ``PromptTruncatedWarning`` per prompt naming it and the limit.
"""
from __future__ import annotations

import bisect
import collections
import dataclasses
import queue
import threading
import time
import warnings
from typing import Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from streamdit_jax.models.conditioned import text_encoder_of, text_params_of
from streamdit_jax.models.text import PromptTruncatedWarning, TextEncoder
from streamdit_jax.models.autoencoder import VideoAutoencoder
from streamdit_jax.partition import NoiseSchedule, Partition
from streamdit_jax.pixels import float_to_frames
from streamdit_jax.profiling import ProfileWindow
from streamdit_jax.sampling.buffer import make_buffer_step, make_stream_start, make_v2v_start, model_denoise_fn
from streamdit_jax.sampling.schedules import (LivePrompt, Schedule, show_value, check_guidance, check_int, check_seed,
                                              normalize_schedule)
from streamdit_jax.sampling.stream_threads import _JOIN_TIMEOUT_S, GcPause, NoGcPause, _drain, _nothing, _pump
from streamdit_jax.sampling.video_input import StreamedVideoLatents
@dataclasses.dataclass
class StreamStats:
    """Timing of a stream: time to first frame (seconds; ``Streamer.frames``: to the first decoded frame,
    ``Streamer.latents``: to the first latent chunk) and per-chunk latencies of the denoising loop."""

    time_to_first_frame: float = float("nan")
    chunk_seconds: list = dataclasses.field(default_factory=list)
    frames: int = 0
    wall_seconds: float = float("nan")

    def summary(self) -> dict:
        lat = np.asarray(self.chunk_seconds) if self.chunk_seconds else np.asarray([np.nan])
        return {"time_to_first_frame_s": self.time_to_first_frame, "p50_chunk_ms": 1e3 * float(np.median(lat)),
                "p99_chunk_ms": 1e3 * float(np.percentile(lat, 99)), "frames": self.frames,
                "frames_per_second": self.frames / self.wall_seconds if self.wall_seconds else float("nan")}

class Streamer:
    """Streams frames from (graphdef, params) with a fixed partition, chosen at run time; compiles once."""

    def __init__(self, graphdef, params, partition: Partition, latent_frame_shape: tuple[int, int, int],
                 autoencoder: VideoAutoencoder, *, schedule: NoiseSchedule = NoiseSchedule(),
                 guidance_scale: Optional[float] = None, queue_size: int = 4, pause_gc: bool = False,
                 warmup_frames: int = 0, text_encoder: Optional[TextEncoder] = None, text_params=None,
                 prompt_cache_size: int = 64, profile: Optional[ProfileWindow] = None):
        """``latent_frame_shape`` = (h, w, C); ``autoencoder`` decodes the latent chunks with its streaming
        decoder (``decode_chunk``, its state carried from chunk to chunk; ``frames`` yields temporal_factor video
        frames per latent frame). ``num_frames`` and the schedule's frame indices count latent frames.
        ``guidance_scale`` None or 1 streams without classifier-free guidance (e.g. a distilled model); else a
        finite scale up to MAX_GUIDANCE (``check_guidance``: ValueError naming any other value).
        ``pause_gc``: no automatic cyclic garbage collection while streaming (``GcPause``; process-wide).
        ``warmup_frames``: frames generated after the T2V start and discarded before the first emitted one (rounded
        up to whole chunks; the time to first frame includes them; video-to-video streams start from their input
        and have none). The prompt schedule counts emitted frames; the warm-up uses the prompt at frame 0.
        ``text_encoder``: the model config's own (``models.conditioned.text_encoder_of``) unless given; a trainable
        one reads its parameters from ``params["text_encoder"]``, a frozen one brings its own (``text_params`` overrides). Each prompt is
        encoded once and its embeddings kept for the ``prompt_cache_size`` most recently used prompts.
        ``profile`` (also settable as the attribute): traces the stream's macro steps that emit chunks, counted from
        0 per stream (the warm-up's are not counted); the caller closes it (``ProfileWindow.close``)."""
        guidance_scale = check_guidance(guidance_scale)
        if not isinstance(warmup_frames, (int, np.integer)) or warmup_frames < 0:
            raise ValueError(f"warmup_frames={warmup_frames!r} must be an int >= 0 (0: emit from the T2V start, "
                             f"{partition.B - partition.K}: one buffer)")
        if not isinstance(queue_size, (int, np.integer)) or queue_size < 1:
            raise ValueError(f"queue_size={queue_size!r} must be an int >= 1 (chunks held between the threads)")
        self.warmup_chunks = -(-int(warmup_frames) // partition.c)
        self.pause_gc = pause_gc
        self.graphdef, self.params, self.partition = graphdef, params, partition
        self.autoencoder, self.queue_size = autoencoder, queue_size
        self._decode_chunk = jax.jit(autoencoder.decode_chunk)
        self.guidance = None if guidance_scale is None or guidance_scale == 1.0 else guidance_scale
        denoise = model_denoise_fn(graphdef)
        self._start = make_stream_start(denoise, partition, schedule)
        self._step = make_buffer_step(denoise, partition, schedule)
        self._v2v_start = make_v2v_start(partition, schedule)
        self.text_encoder = text_encoder or text_encoder_of(nnx.merge(graphdef, params).cfg)
        self.text_params = text_params_of(self.text_encoder, params) if text_params is None else text_params
        self._encode = jax.jit(self.text_encoder.encode)
        self._prompts_checked: set = set()
        self._like = jnp.zeros((1, partition.B) + tuple(latent_frame_shape), jnp.float32)
        self.prompt_cache_size = check_int(prompt_cache_size, "prompt_cache_size", 1,
                                           meaning="prompts whose embeddings are kept")
        self._cache: collections.OrderedDict[str, tuple] = collections.OrderedDict()
        self.encode_calls = 0
        self.stats = StreamStats()
        self.profile = profile

    def sampling_settings(self) -> dict:
        """The run-time choices a stream depends on besides its seed and prompts (enough to replay it exactly)."""
        p = self.partition
        return {"reference_frames": p.K, "chunk": p.c, "steps_per_chunk": p.s, "guidance": self.guidance or 1.0,
                "warmup_frames": self.warmup_chunks * p.c}

    def _check_prompt(self, prompt: str, stacklevel: int = 3) -> None:
        """Warns (PromptTruncatedWarning) once per prompt per streamer when the text encoder reads only part of it."""
        if prompt in self._prompts_checked:
            return
        self._prompts_checked.add(prompt)
        message = self.text_encoder.truncation_message(prompt)
        if message:
            warnings.warn(message, PromptTruncatedWarning, stacklevel=stacklevel)

    def _check_request(self, schedule, num_frames, seed, video, strength) -> int:
        """Eager validation of a stream request (before any compile); returns num_frames as an int or None."""
        num_frames = check_int(num_frames, "num_frames", 0, allow_none=True, meaning="None: stream forever")
        check_seed(seed)
        if not isinstance(schedule, LivePrompt):  # a live prompt is checked when the stream reads it
            for _, prompt in normalize_schedule(schedule):
                self._check_prompt(prompt, stacklevel=4)
        if video is not None:
            shape = np.shape(video)
            if len(shape) != 4 or tuple(shape[1:]) != self._like.shape[2:] or shape[0] < 1:
                raise ValueError(f"input video latents have shape {tuple(shape)}; expected [T >= 1] + "
                                 f"{list(self._like.shape[2:])}")
            real = isinstance(strength, (int, float, np.integer, np.floating)) and not isinstance(strength, bool)
            if not real or not 0.0 < strength <= 1.0:
                raise ValueError(f"strength={show_value(strength)} must be in (0, 1]")
        return num_frames

    def _cond(self, prompt: str):
        """Text embeddings of ``prompt``, encoded only when it is not among the ``prompt_cache_size`` most recently
        used prompts (the paper re-encodes only on a change; a live stream may see unboundedly many prompts)."""
        if prompt in self._cache:
            self._cache.move_to_end(prompt)
            return self._cache[prompt]
        self._check_prompt(prompt)
        self.encode_calls += 1
        cond = self._encode(self.text_params, jnp.asarray(self.text_encoder.tokenize([prompt])))
        self._cache[prompt] = cond
        while len(self._cache) > self.prompt_cache_size:
            self._cache.popitem(last=False)
        return cond

    def _null(self):
        return self._cond("") if self.guidance else None

    def _guide(self, video: np.ndarray, step: int) -> jax.Array:
        """[1, B, h, w, C]: the input video's latents for the buffer slots at macro step ``step`` (slot i holds
        stream frame step * c + i), the last input frame repeated past the video's end."""
        idx = np.minimum(step * self.partition.c + np.arange(self.partition.B), len(video) - 1)
        return jnp.asarray(video[idx][None], jnp.float32)

    def latents(self, schedule: Schedule, num_frames: Optional[int], seed: int = 0, *,
                video: Optional[np.ndarray] = None, strength: float = 0.6) -> Iterator[np.ndarray]:
        """Latent chunks [n, h, w, C] in stream order (the K reference frames first), until num_frames (None: forever).

        ``video`` (latents [T, h, w, C], or ``StreamedVideoLatents``: encoded as the stream reaches them) streams
        video-to-video: the buffer starts from the input noised to each
        chunk's level and every macro step re-injects it above noise level ``strength`` (buffer.inject_guide); the
        stream then ends with the input (at most T frames).
        The arguments are checked here, before anything is compiled: ``num_frames`` an int >= 0 (0: nothing) or
        None, ``seed`` an int in [0, MAX_SEED], the schedule, the video's shape and ``strength`` in (0, 1]
        (ValueError naming the value); prompts the text encoder cuts warn (PromptTruncatedWarning).
        """
        num_frames = self._check_request(schedule, num_frames, seed, video, strength)
        self.stats = StreamStats()
        if num_frames == 0:
            return _nothing()
        return self._latents(schedule, num_frames, int(seed), video, strength, self.stats)

    def _latents(self, schedule, num_frames, seed, video, strength, stats: StreamStats):
        """``latents`` recording into ``stats``: each stream its own object, so a denoising thread still finishing
        an abandoned stream never writes into the next stream's figures."""
        if isinstance(schedule, LivePrompt):
            schedule.reset()
            prompt_at = schedule.at
        else:
            items = normalize_schedule(schedule)
            starts = [f for f, _ in items]
            prompt_at = lambda frame: items[bisect.bisect_right(starts, frame) - 1][1]
        if video is not None:  # checked by _check_request
            video = video if isinstance(video, StreamedVideoLatents) else np.asarray(video)
            num_frames = len(video) if num_frames is None else min(num_frames, len(video))
        w = jnp.float32(self.guidance or 1.0)
        t0 = time.perf_counter()
        if video is None:
            state, refs = self._start(self.params, jax.random.key(seed), self._like, self._cond(prompt_at(0)),
                                      self._null(), w)
        else:
            state, refs = self._v2v_start(jax.random.key(seed), self._guide(video, 0))
        with (GcPause() if self.pause_gc else NoGcPause()) as pause:
            yield from self._stream(state, refs, video, strength, num_frames, prompt_at, w, t0, pause, stats)

    def _stream(self, state, refs, video, strength, num_frames, prompt_at, w, t0, pause, stats):
        c, K = self.partition.c, self.partition.K
        step = 0
        emitted = 0
        if video is None and self.warmup_chunks:
            cond, null = self._cond(prompt_at(0)), self._null()
            for _ in range(self.warmup_chunks):  # its frames (and the K T2V reference frames) are not emitted
                state, _ = self._step(self.params, state, cond, null, w)
                step += 1
        elif K:
            first = np.asarray(refs[0])
            stats.time_to_first_frame = time.perf_counter() - t0
            emitted += K
            yield first[: num_frames]
        profile, step0 = self.profile or ProfileWindow(None), step  # profiled steps: emitted chunks, from 0
        while num_frames is None or emitted < num_frames:
            t = time.perf_counter()
            extra = () if video is None else (self._guide(video, step), jnp.float32(strength))
            profile.before_step(step - step0)
            with profile.annotate(step - step0, "buffer_step"):
                state, chunk = self._step(self.params, state, self._cond(prompt_at(emitted)), self._null(), w, *extra)
                chunk = np.asarray(chunk[0])  # waits for the device
            profile.after_step(step - step0)
            step += 1
            stats.chunk_seconds.append(time.perf_counter() - t)
            if emitted == 0:
                stats.time_to_first_frame = time.perf_counter() - t0
            take = c if num_frames is None else min(c, num_frames - emitted)
            emitted += take
            pause.tick()
            yield chunk[:take]

    def frames(self, schedule: Schedule, num_frames: Optional[int], seed: int = 0, *,
               video: Optional[np.ndarray] = None, strength: float = 0.6) -> Iterator[np.ndarray]:
        """uint8 frame chunks [n, H, W, 3]. Denoising and decoding each run on a background thread, linked by
        bounded queues (the paper's separate threads), so the caller only consumes finished frames.
        ``video``/``strength``: video-to-video, as in ``latents``; the arguments are checked here, as there."""
        num_frames = self._check_request(schedule, num_frames, seed, video, strength)
        if num_frames == 0:
            self.stats = StreamStats()
            return _nothing()
        return self._frames(schedule, num_frames, int(seed), video, strength)

    def _decoded(self, chunks):
        """uint8 video frames of each latent chunk [n, h, w, C], through the streaming decoder: its state starts
        fresh with the stream and is carried from chunk to chunk (a causal decoder's caches)."""
        params, state = self.autoencoder.params, None
        for latents in chunks:
            batch = jnp.asarray(latents)[None]
            if state is None:
                state = self.autoencoder.init_decode_state(params, batch.shape)
            state, video = self._decode_chunk(params, state, batch)
            yield float_to_frames(video[0])

    def _frames(self, schedule, num_frames, seed, video, strength):
        stats = self.stats = StreamStats()
        latent_q: queue.Queue = queue.Queue(maxsize=self.queue_size)
        frame_q: queue.Queue = queue.Queue(maxsize=self.queue_size)
        stop = threading.Event()
        latents = self._latents(schedule, num_frames, seed, video, strength, stats)
        decoded = self._decoded(_drain(latent_q, stop))
        threads = [threading.Thread(target=_pump, args=(latents, latent_q, stop), daemon=True,
                                    name="streamdit-denoise"),
                   threading.Thread(target=_pump, args=(decoded, frame_q, stop), daemon=True,
                                    name="streamdit-decode")]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        try:
            for frames in _drain(frame_q, stop):
                if not stats.frames:  # the first DECODED frame: what a viewer waits for
                    stats.time_to_first_frame = time.perf_counter() - t0
                stats.frames += len(frames)
                stats.wall_seconds = time.perf_counter() - t0
                yield frames
        finally:
            stop.set()
            for t in threads:  # a thread inside a long macro step finishes it on its own (into its own stats)
                t.join(timeout=_JOIN_TIMEOUT_S)
