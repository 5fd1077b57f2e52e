"""Streamer: exact frame counts, one trace, constant buffer, determinism, prompt switches (scheduled and live),
encoding on change; arguments checked before anything compiles, a prompt the text encoder cuts warned of."""
import re

import numpy as np
import pytest
from flax import nnx

from helpers import tiny_model
from streamdit_jax.models.autoencoder import PatchAutoencoder
from streamdit_jax.partition import Partition
from streamdit_jax.sampling import buffer
from streamdit_jax.sampling.schedules import LivePrompt, normalize_schedule
from streamdit_jax.sampling.stream import Streamer

AE = PatchAutoencoder(2)


def make_streamer(partition, window=(4, 2, 2), **kw):
    model = tiny_model(seed=1, latent_channels=12, window=window)
    graphdef, params = nnx.split(model)
    return Streamer(graphdef, params, partition, (4, 4, 12), AE, **kw)


def collect(streamer, schedule, num_frames, seed=0):
    return np.concatenate(list(streamer.frames(schedule, num_frames, seed)))


@pytest.fixture(scope="module")
def streamer():
    return make_streamer(Partition.from_buffer(8, 2, 1))


def test_streamer_emits_exactly_num_frames_of_decoded_video(streamer):
    frames = collect(streamer, "a red circle moving left", 23)
    assert frames.shape == (23, 8, 8, 3) and frames.dtype == np.uint8
    assert streamer.stats.frames == 23 and streamer.stats.time_to_first_frame > 0


def test_streamer_traces_once_over_100_chunks_with_a_constant_buffer(monkeypatch):
    traces, shapes = [], set()
    original = buffer.model_denoise_fn

    def counting(graphdef):
        fn = original(graphdef)

        def denoise(params, x, tau, cond, frames):
            traces.append(1)
            shapes.add(x.shape)
            return fn(params, x, tau, cond, frames)

        return denoise

    monkeypatch.setattr("streamdit_jax.sampling.stream.model_denoise_fn", counting)
    s = make_streamer(Partition.from_buffer(8, 2, 1))
    n = sum(len(c) for c in s.latents({0: "a red circle moving left", 60: "a blue square moving up"}, 200))
    assert n == 200 and len(s.stats.chunk_seconds) == 100
    assert len(traces) == 2  # one trace of the stream start's T2V scan, one of the buffer step: never again
    assert shapes == {(1, 8, 4, 4, 12)}


def test_same_seed_and_schedule_give_identical_frames_and_other_seeds_differ(streamer):
    schedule = {0: "a red circle moving left", 10: "a green square moving up"}
    a, b = collect(streamer, schedule, 30, seed=3), collect(streamer, schedule, 30, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, collect(streamer, schedule, 30, seed=4))


def test_a_prompt_switch_at_frame_f_changes_nothing_before_f(streamer):
    base = collect(streamer, "a red circle moving left", 40, seed=1)
    switched = collect(streamer, {0: "a red circle moving left", 20: "a white triangle moving down"}, 40, seed=1)
    np.testing.assert_array_equal(switched[:20], base[:20])
    assert not np.array_equal(switched[20:], base[20:])


def test_prompts_are_encoded_only_when_they_change():
    s = make_streamer(Partition.from_buffer(8, 2, 1), guidance_scale=3.0)
    collect(s, {0: "a red circle moving left", 8: "a blue square moving up", 16: "a red circle moving left"}, 30)
    assert s.encode_calls == 3  # two prompts and the null prompt of guidance, each once


def test_reference_frames_stream_first_and_count_towards_num_frames():
    s = make_streamer(Partition.from_buffer(9, 2, 1, reference_frames=1), window=(0, 2, 2))  # 9 frames
    chunks = list(s.latents("a red circle moving left", 7))
    assert [len(c) for c in chunks] == [1, 2, 2, 2]


@pytest.mark.parametrize("schedule,needle", [({}, "empty"), ({5: "a red circle moving left"}, "no prompt at frame 0"),
                                              ({0: "x", -1: "y"}, "entry -1"), ({0: "x", True: "y"}, "entry True"),
                                              ([(0, "x"), (9, "y")], "got list")])
def test_bad_schedules_raise_errors_naming_the_entry(schedule, needle):
    with pytest.raises(ValueError, match=needle):
        normalize_schedule(schedule)


def test_inject_guide_replaces_exactly_the_slots_noisier_than_strength_by_the_noised_input():
    import jax
    import jax.numpy as jnp
    tau = jnp.asarray([1.0, 0.75, 0.5, 0.25, 0.0])  # data levels (Eq. 2: tau 0 = noise); noise levels 1 - tau
    latents = jnp.full((1, 5, 8, 8, 3), 7.0)
    guide = jnp.ones((1, 5, 8, 8, 3))
    state = buffer.BufferState(latents, jnp.zeros(5), jnp.zeros((), jnp.int32), jax.random.key(0))
    out = np.asarray(buffer.inject_guide(state, guide, 0.5, tau).latents)
    np.testing.assert_array_equal(out[:, :3], latents[:, :3])  # noise level <= strength: the model's
    t = np.asarray(tau[3:])[None, :, None, None, None]
    noise = (out[:, 3:] - t) / (1 - (1 - 1e-5) * t)  # Eq. 5 with X1 = 1, inverted: what remains is the noise
    assert abs(noise.mean()) < 0.15 and 0.85 < noise.std() < 1.15
    np.testing.assert_array_equal(buffer.inject_guide(state, guide, 1.0, tau).latents, latents)  # strength 1: none


def test_video_to_video_emits_the_input_length_deterministically_and_depends_on_the_input(streamer):
    rng = np.random.default_rng(0)
    a, b = (rng.uniform(-1, 1, (40, 4, 4, 12)).astype(np.float32) for _ in range(2))
    run = lambda video: np.concatenate(list(streamer.latents("a red circle moving left", None, seed=2, video=video,
                                                             strength=0.3)))
    out_a = run(a)
    assert out_a.shape == (40, 4, 4, 12)  # ends with the input
    np.testing.assert_array_equal(out_a, run(a))
    assert not np.allclose(out_a[-8:], run(b)[-8:])  # the input is re-injected to the end, not just at the start


def test_video_to_video_keeps_the_input_above_strength_and_drops_it_at_strength_one(monkeypatch):
    """With a zero velocity nothing is generated, so every emitted frame is exactly what was injected: the input
    noised to its chunk's last level (strength below every level), or fresh noise once the start has left (1)."""
    import jax.numpy as jnp
    monkeypatch.setattr("streamdit_jax.sampling.stream.model_denoise_fn",
                        lambda graphdef: lambda params, x, tau, cond, frames: jnp.zeros_like(x))
    s = make_streamer(Partition.from_buffer(8, 2, 1))  # tau at a macro step's start: 3/4, 1/2, 1/4, 0
    rng = np.random.default_rng(0)
    a, b = (rng.uniform(-1, 1, (40, 4, 4, 12)).astype(np.float32) for _ in range(2))
    run = lambda video, strength: np.concatenate(list(s.latents("x", None, seed=2, video=video, strength=strength)))
    out = run(a, 0.1)
    noise = (out - 0.75 * a) / (1 - (1 - 1e-5) * 0.75)  # Eq. 5 at tau = 3/4, inverted
    assert abs(noise.mean()) < 0.1 and 0.9 < noise.std() < 1.1
    assert np.corrcoef(out.ravel(), a.ravel())[0, 1] > 0.7
    np.testing.assert_array_equal(run(a, 1.0)[8:], run(b, 1.0)[8:])
    assert not np.allclose(run(a, 1.0)[:8], run(b, 1.0)[:8])  # the start was filled from the input


def test_video_to_video_rejects_mismatched_latents_and_strength(streamer):
    with pytest.raises(ValueError, match=r"\[4, 4, 12\]"):
        next(streamer.latents("x", None, video=np.zeros((8, 4, 4, 3), np.float32)))
    with pytest.raises(ValueError, match="strength=0"):
        next(streamer.latents("x", None, video=np.zeros((8, 4, 4, 12), np.float32), strength=0.0))


def test_denoising_and_decoding_run_on_background_threads_and_errors_reach_the_consumer():
    import threading
    names = []
    s = make_streamer(Partition.from_buffer(8, 2, 1))
    decode = s._decode_chunk
    s._decode_chunk = lambda p, state, lat: (names.append(threading.current_thread().name), decode(p, state, lat))[1]
    frames = np.concatenate(list(s.frames("a red circle moving left", 10)))
    assert len(frames) == 10 and set(names) == {"streamdit-decode"}

    def broken(p, state, lat):
        raise RuntimeError("decoder exploded")

    s._decode_chunk = broken
    with pytest.raises(RuntimeError, match="decoder exploded"):
        list(s.frames("a red circle moving left", 10))
    assert not [t for t in threading.enumerate() if t.name.startswith("streamdit-")]


def test_gc_pause_disables_automatic_collection_collects_every_n_chunks_and_restores_the_state():
    import gc
    from streamdit_jax.sampling.stream_threads import GcPause
    assert gc.isenabled()
    with GcPause(collect_every=3) as pause:
        assert not gc.isenabled()
        for _ in range(7):
            pause.tick()
        assert pause.collections == 2
    assert gc.isenabled()
    gc.disable()
    try:
        with GcPause():
            pass
        assert not gc.isenabled()  # an application that had GC off keeps it off
    finally:
        gc.enable()
    with pytest.raises(ValueError, match="collect_every"):
        GcPause(collect_every=0)


def test_a_gc_paused_stream_gives_the_same_frames_with_gc_off_only_while_streaming(streamer):
    import gc
    paused = make_streamer(Partition.from_buffer(8, 2, 1), pause_gc=True)
    seen = []
    for chunk in paused.latents("a red circle moving left", 12, seed=5):
        seen.append(gc.isenabled())
    assert seen and not any(seen) and gc.isenabled()
    np.testing.assert_array_equal(collect(paused, "a red circle moving left", 12, seed=5),
                                  collect(streamer, "a red circle moving left", 12, seed=5))


def test_warmup_discards_whole_chunks_and_the_schedule_counts_emitted_frames():
    plain = make_streamer(Partition.from_buffer(8, 2, 1))
    warm = make_streamer(Partition.from_buffer(8, 2, 1), warmup_frames=3)  # rounded up to 2 chunks = 4 frames
    assert warm.warmup_chunks == 2
    a, b = "a red circle moving left", "a green square moving up"
    reference = np.concatenate(list(plain.latents({0: a, 10: b}, 24, seed=3)))
    warmed = np.concatenate(list(warm.latents({0: a, 6: b}, 20, seed=3)))
    np.testing.assert_array_equal(warmed, reference[4:])
    assert len(warm.stats.chunk_seconds) == 10  # emitted chunks only; the warm-up is in the time to first frame
    with pytest.raises(ValueError, match=r"warmup_frames=-1 must be an int >= 0"):
        make_streamer(Partition.from_buffer(8, 2, 1), warmup_frames=-1)


def test_a_live_prompt_set_mid_stream_lands_at_the_next_macro_step_and_its_record_replays_the_stream_exactly():
    s = make_streamer(Partition.from_buffer(8, 2, 1), warmup_frames=6)
    a, b = "a red circle moving left", "a green square moving up"
    live = LivePrompt(a)
    chunks = s.latents(live, 20, seed=5)
    head = [next(chunks) for _ in range(3)]  # frames 0-5 streamed with a
    live.set(b)  # the generator is paused after frame 5: the next macro step (frame 6) is the first with b
    streamed = np.concatenate(head + list(chunks))
    assert live.schedule() == {0: a, 6: b}
    np.testing.assert_array_equal(streamed, np.concatenate(list(s.latents(live.schedule(), 20, seed=5))))
    unswitched = np.concatenate(list(s.latents(a, 20, seed=5)))
    np.testing.assert_array_equal(streamed[:6], unswitched[:6])
    assert not np.array_equal(streamed[6:], unswitched[6:])


def test_a_live_prompt_changed_from_another_thread_during_threaded_streaming_replays_exactly(streamer):
    import threading

    live = LivePrompt("a red circle moving left")
    later = ["a blue square moving up", "a white triangle moving down"]
    switches = iter(later)
    frames, done = [], 0
    for chunk in streamer.frames(live, 40, seed=2):
        frames.append(chunk)
        done += len(chunk)
        if done in (10, 24):  # from a thread that is neither the denoising nor the consumer one
            t = threading.Thread(target=live.set, args=(next(switches),))
            t.start()
            t.join()
    recorded = live.schedule()
    # where (and, in principle, whether both) the switches landed depends on how far the denoising thread had run
    # ahead of the consumer: the record says what was streamed, and replaying it must give the same frames
    starts, prompts = list(recorded), list(recorded.values())
    assert prompts[0] == "a red circle moving left" and prompts[-1] == later[-1] and set(prompts[1:]) <= set(later)
    assert starts[0] == 0 and all(10 <= f < 40 and f % 2 == 0 for f in starts[1:]) and starts == sorted(starts)
    np.testing.assert_array_equal(np.concatenate(frames), collect(streamer, recorded, 40, seed=2))


def test_a_live_prompt_fixes_each_frames_prompt_at_its_first_read_and_rejects_bad_input():
    live = LivePrompt("a")
    assert live.at(0) == "a"
    live.set("b")
    assert live.at(0) == "a"  # frame 0 was already streamed (e.g. by the start) with "a"
    live.set("c")  # the last set before the next read wins
    assert live.at(2) == "c" and live.at(4) == "c"
    assert live.schedule() == {0: "a", 2: "c"}
    with pytest.raises(ValueError, match="read for frame 0 after frame 2"):
        live.at(0)
    with pytest.raises(ValueError, match="must be a string, got 3"):
        live.set(3)
    live.reset()
    assert live.schedule() == {} and live.at(0) == "c"


def test_an_abandoned_streams_denoising_thread_finishing_late_never_writes_into_the_next_streams_stats(monkeypatch):
    import threading

    import streamdit_jax.sampling.stream as stream_lib

    monkeypatch.setattr(stream_lib, "_JOIN_TIMEOUT_S", 0.1)
    s = make_streamer(Partition.from_buffer(8, 2, 1))
    step, entered, release, calls = s._step, threading.Event(), threading.Event(), []

    def slow_third_step(*args):
        calls.append(1)
        if len(calls) == 3:  # stream 1's third macro step outlives the stream
            entered.set()
            release.wait(30)
        return step(*args)

    s._step = slow_third_step
    first = s.frames("a red circle moving left", 40)
    next(first)
    assert entered.wait(30)
    first.close()  # the consumer leaves while the denoising thread sits in its third step
    stale = [t for t in threading.enumerate() if t.name == "streamdit-denoise" and t.is_alive()]
    s._step = step
    assert len(collect(s, "a blue square moving up", 6)) == 6
    second = s.stats
    release.set()  # stream 1's step finishes now, after stream 2
    assert len(stale) == 1
    stale[0].join(10)
    assert len(second.chunk_seconds) == 3 and second.frames == 6
    assert second.time_to_first_frame > 0


def _no_compiling(monkeypatch, s):
    """Makes any stream start or macro step of ``s`` fail: a test then shows an argument was refused (or a stream
    was empty) before anything compiled."""
    def compiled(*args):
        raise AssertionError("the stream started: it compiled")

    for name in ("_start", "_step", "_v2v_start"):
        monkeypatch.setattr(s, name, compiled)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e9, 100.5, 0.5, -3.0, True, "3"])
def test_the_streamer_refuses_a_guidance_scale_that_is_not_finite_in_1_to_100_naming_it(streamer, value):
    shown = repr(float(value)) if isinstance(value, float) else repr(value)
    with pytest.raises(ValueError, match=rf"guidance_scale={re.escape(shown)} must be a finite number in \[1, 100\]"):
        Streamer(streamer.graphdef, streamer.params, streamer.partition, (4, 4, 12), streamer.autoencoder,
                 guidance_scale=value)
    for off in (None, 1, 1.0):
        assert Streamer(streamer.graphdef, streamer.params, streamer.partition, (4, 4, 12), streamer.autoencoder,
                        guidance_scale=off).guidance is None


@pytest.mark.parametrize("num_frames,seed,needle", [
    (3.5, 0, r"num_frames=3.5 must be an int >= 0 or None"), (-1, 0, r"num_frames=-1 must be an int >= 0"),
    (True, 0, r"num_frames=True must be an int"), ("8", 0, r"num_frames='8' must be an int"),
    (8, 1.5, r"seed=1.5 must be an int in \[0, 4294967295\]"), (8, -1, r"seed=-1 must be an int in \[0, 4294967295\]"),
    (8, 2 ** 32, r"seed=4294967296 must be"), (8, True, r"seed=True must be")])
def test_frames_and_latents_refuse_bad_num_frames_and_seeds_when_called_before_compiling(streamer, monkeypatch,
                                                                                         num_frames, seed, needle):
    _no_compiling(monkeypatch, streamer)
    for method in (streamer.frames, streamer.latents):
        with pytest.raises(ValueError, match=needle):
            method("a red circle moving left", num_frames, seed)  # raised by the call itself, not by iterating


def test_zero_frames_stream_nothing_without_compiling_also_with_reference_frames(streamer, monkeypatch):
    with_refs = make_streamer(Partition.from_buffer(9, 2, 1, reference_frames=1), window=(0, 2, 2))
    for s in (streamer, with_refs):
        _no_compiling(monkeypatch, s)
        assert list(s.frames("a red circle moving left", 0)) == [] and list(s.latents("x", 0, np.int64(3))) == []


def test_a_prompt_longer_than_the_text_encoder_reads_warns_once_naming_it_and_the_limit(streamer, monkeypatch):
    import warnings

    from streamdit_jax.models.text import PromptTruncatedWarning

    long = "a red circle moving left while a blue square moving up watches it"  # 65 bytes; tiny reads 47
    _no_compiling(monkeypatch, streamer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        streamer.frames({0: long, 4: "a blue square moving up", 8: long}, 12)  # warned by the call: before compiling
        streamer.latents(long, 12)  # the same prompt again: no second warning
    cut = [w for w in caught if issubclass(w.category, PromptTruncatedWarning)]
    assert len(cut) == 1, [str(w.message) for w in caught]
    message = str(cut[0].message)
    assert repr(long) in message and "65 bytes" in message and "first 47 bytes" in message and "max_len 48" in message
    assert repr(long.encode()[:47].decode()) in message  # what the model sees


def test_a_live_prompt_too_long_for_the_text_encoder_warns_when_the_stream_reads_it():
    import warnings

    from streamdit_jax.models.text import PromptTruncatedWarning

    s = make_streamer(Partition.from_buffer(8, 2, 1))
    live, long = LivePrompt("a red circle moving left"), "a blue square moving up, then a red one moving left too"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chunks = s.latents(live, 8, seed=1)
        next(chunks)
        live.set(long)
        list(chunks)
    assert [str(w.message) for w in caught if issubclass(w.category, PromptTruncatedWarning)] == \
        [s.text_encoder.truncation_message(long)] and long in live.schedule().values()
