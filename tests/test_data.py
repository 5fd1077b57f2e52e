"""Data package: the shapes world, the TFDS builders (read without TensorFlow) and the grain pipeline."""
import functools
import importlib.util
import json
import logging
import os
import sys

import imageio.v3 as iio
import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from streamdit_jax import parallel
from streamdit_jax import shapes_world as shapes
from streamdit_jax import pixels
from streamdit_jax import shapes_wording as wording
from streamdit_jax.data import pipeline, tfds_builders
from streamdit_jax.shapes_world import COLOUR, COLOURS, MOTION, MOTIONS, PRESENT, SHAPE, X, Y, ShapesWorldConfig
from streamdit_jax.models.text import BYTE_OFFSET, BOS, PAD, tokenize_bytes

TWO = ShapesWorldConfig(frame_size=32, two_object_prob=0.5)
CLIP_LEN, WINDOW, TEXT_LEN = 20, 6, 64
TOKENIZE = functools.partial(tokenize_bytes, max_len=TEXT_LEN)
# Frequent switches, so that the first and last frames of a window often have different captions.
TINY_WORLD = ShapesWorldConfig(frame_size=16, two_object_prob=0.5, mean_switch_interval=4)


def decode_tokens(tokens: np.ndarray) -> str:
    tokens = np.asarray(tokens)
    assert tokens[0] == BOS
    body = tokens[1:]
    body = body[body != PAD]
    return bytes((body - BYTE_OFFSET).astype(np.uint8).tolist()).decode("utf-8")


# ------------------------------------------------------------------------------------------------ the shapes world

def test_render_is_deterministic_per_seed_and_differs_between_seeds():
    a, b, c = shapes.render(7, 40, TWO), shapes.render(7, 40, TWO), shapes.render(8, 40, TWO)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.attributes, b.attributes)
    assert a.captions == b.captions
    assert not np.array_equal(a.frames, c.frames)


def test_rendering_a_stream_in_pieces_equals_rendering_it_at_once():
    whole = shapes.render(3, 90, TWO)
    stream = shapes.ShapesStream(3, TWO)
    pieces = shapes.concatenate([stream.take(n) for n in (1, 30, 0, 59)])
    assert stream.frame_index == 90
    np.testing.assert_array_equal(pieces.frames, whole.frames)
    np.testing.assert_array_equal(pieces.attributes, whole.attributes)
    assert pieces.captions == whole.captions


@pytest.mark.parametrize("config", [ShapesWorldConfig(), TWO], ids=["one_object", "two_objects"])
def test_captions_parse_back_to_the_true_attributes_at_every_frame(config):
    for seed in range(4):
        clip = shapes.render(seed, 300, config)
        assert clip.frames.shape == (300, config.frame_size, config.frame_size, 3)
        assert clip.frames.dtype == np.uint8 and clip.attributes.dtype == np.int32
        assert clip.attributes.shape == (300, config.max_objects, shapes.NUM_ATTRIBUTES)
        assert len(clip.captions) == 300
        for t in range(300):
            truth = [(shapes.SHAPES[r[SHAPE]], COLOURS[r[COLOUR]], MOTIONS[r[MOTION]])
                     for r in clip.attributes[t] if r[PRESENT]]
            assert shapes.parse_caption(clip.captions[t]) == truth, (seed, t)
    if config is TWO:  # the two-object grammar is exercised
        assert any(" and " in shapes.render(s, 1, config).captions[0] for s in range(20))


def test_exactly_one_attribute_of_one_object_switches_at_a_time_and_switches_happen_within_300_frames():
    for seed in range(4):
        clip = shapes.render(seed, 300, TWO)
        cols = [SHAPE, COLOUR, MOTION]
        changes = np.argwhere(clip.attributes[1:, :, cols] != clip.attributes[:-1, :, cols])
        assert len(changes) >= 1, f"seed {seed}: no switch in 300 frames (mean interval 48)"
        frames_with_change = changes[:, 0]
        assert len(set(frames_with_change)) == len(frames_with_change), "more than one attribute changed at once"
        caption_changes = [t for t in range(1, 300) if clip.captions[t] != clip.captions[t - 1]]
        assert caption_changes == sorted(frames_with_change + 1)
        np.testing.assert_array_equal(clip.attributes[:, :, PRESENT], clip.attributes[:1, :, PRESENT].repeat(300, 0))
        present = clip.attributes[0, :, PRESENT] == 1
        colours = clip.attributes[:, present, COLOUR]
        assert all(len(set(row)) == len(row) for row in colours), "two objects share a colour"


def test_switch_weights_set_which_attribute_switches_and_equal_weights_keep_the_original_world():
    def switched_columns(config):
        counts = np.zeros(3, int)
        for seed in range(20):
            attrs = shapes.render(seed, 400, config).attributes[:, 0, [SHAPE, COLOUR, MOTION]]
            counts += (attrs[1:] != attrs[:-1]).sum(0)
        return counts

    motion_only = switched_columns(ShapesWorldConfig(mean_switch_interval=8, switch_weights=(0, 0, 1)))
    assert motion_only[:2].sum() == 0 and motion_only[2] > 500
    turns = switched_columns(ShapesWorldConfig(mean_switch_interval=8, switch_weights=(1, 1, 2)))
    assert 0.43 < turns[2] / turns.sum() < 0.57, turns  # half of the switches are motion, by the weights
    default, explicit = shapes.render(3, 300), shapes.render(3, 300, ShapesWorldConfig(switch_weights=(2, 2, 2)))
    np.testing.assert_array_equal(default.frames, explicit.frames)


@pytest.mark.parametrize("config", [ShapesWorldConfig(), TWO], ids=["one_object", "two_objects"])
def test_objects_are_visible_in_their_colour_at_their_centre(config):
    for seed in range(4):
        clip = shapes.render(seed, 100, config)
        for t in range(100):
            top = [r for r in clip.attributes[t] if r[PRESENT]][-1]  # drawn last, so never covered
            rgb = shapes.COLOUR_RGB[COLOURS[top[COLOUR]]]
            np.testing.assert_array_equal(clip.frames[t, top[Y], top[X]], rgb)
            assert (clip.frames[t] == np.array(config.background, np.uint8)).all(-1).mean() > 0.5


@pytest.mark.parametrize("motion", MOTIONS)
def test_motion_wraps_at_the_borders(motion):
    cfg = ShapesWorldConfig(frame_size=16, mean_switch_interval=float("inf"))
    seed = next(s for s in range(200) if MOTIONS[shapes.render(s, 1, cfg).attributes[0, 0, MOTION]] == motion)
    clip = shapes.render(seed, 40, cfg)  # 40 > 16 frames at speed 1: the object crosses a border
    dx, dy = shapes.MOTION_STEP[motion]
    pos = clip.attributes[:, 0, [X, Y]]
    np.testing.assert_array_equal(pos[1:], (pos[:-1] + [dx, dy]) % 16)
    axis = 0 if dx else 1
    wrap = next(t for t in range(1, 40) if abs(int(pos[t, axis]) - int(pos[t - 1, axis])) == 15)
    colour = np.array(shapes.COLOUR_RGB[COLOURS[clip.attributes[wrap, 0, COLOUR]]], np.uint8)
    mask = (clip.frames[wrap] == colour).all(-1)  # [y, x]
    lines = mask.any(0) if axis == 0 else mask.any(1)  # columns (x) or rows (y) the object covers
    assert lines[0] and lines[-1], f"object moving {motion} at the border is not drawn on both sides: {lines}"


def test_caption_grammar_round_trips_and_rejects_other_text_naming_it():
    text = "a red circle moving left and a blue square moving up"
    assert shapes.parse_caption(text) == [("circle", "red", "left"), ("square", "blue", "up")]
    row = np.array([[1, 0, 0, 0, 3, 4], [1, 1, 2, 2, 5, 6]], np.int32)
    assert shapes.caption(row) == text
    assert shapes.caption(row[:1]) == "a red circle moving left"
    for bad in ["", "a red circle", "a purple circle moving left", "a red circle moving left and",
                "a red circle moving left, a blue square moving up"]:
        with pytest.raises(ValueError, match="grammar") as info:
            shapes.parse_caption(bad)
        assert repr(bad) in str(info.value)


def test_world_config_rejects_bad_values_naming_them():
    for kwargs, name in [({"object_size": 30}, "object_size"), ({"speed": 0}, "speed"),
                         ({"max_objects": 3}, "max_objects"), ({"two_object_prob": 1.5}, "two_object_prob"),
                         ({"max_objects": 1, "two_object_prob": 0.5}, "two_object_prob"),
                         ({"mean_switch_interval": 0.5}, "mean_switch_interval"),
                         ({"background": (255, 0, 0)}, "background"),
                         ({"switch_weights": (1, 1)}, "switch_weights"),
                         ({"switch_weights": (1, -1, 1)}, "switch_weights"),
                         ({"switch_weights": (0, 0, 0)}, "switch_weights")]:
        with pytest.raises(ValueError, match=name):
            ShapesWorldConfig(**kwargs)
    assert ShapesWorldConfig(frame_size=16).object_size == 4


# ------------------------------------------------------------------------------------------------ TFDS builders

@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    builder = tfds_builders.prepare("shapes_world", data_dir, num_train_clips=8, num_validation_clips=2,
                                    clip_len=CLIP_LEN, world=TINY_WORLD, base_seed=100)
    return builder, data_dir


def test_shapes_world_builds_and_reads_back_without_tensorflow_equal_to_render(shapes_data):
    builder, data_dir = shapes_data
    name = tfds_builders.data_source_name(builder)
    for split, seeds in (("train", range(100, 108)), ("validation", range(108, 110))):
        source = tfds.data_source(name, split=tfds.split_for_jax_process(split), data_dir=data_dir)
        records = [source[i] for i in range(len(source))]
        assert sorted(int(r["id"]) for r in records) == list(seeds)
        for r in records:
            clip = shapes.render(int(r["id"]), CLIP_LEN, TINY_WORLD)
            assert r["frames"].dtype == np.uint8 and r["frames"].shape == (CLIP_LEN, 16, 16, 3)
            np.testing.assert_array_equal(r["frames"], clip.frames)
            np.testing.assert_array_equal(r["attributes"], clip.attributes)
            assert tfds_builders.split_captions(r["captions"]) == clip.captions
    assert importlib.util.find_spec("tensorflow") is None
    assert "tensorflow" not in sys.modules
    # A second prepare with the same parameters reuses the data (same directory, nothing rewritten).
    stamp = {p: os.path.getmtime(os.path.join(builder.data_dir, p)) for p in os.listdir(builder.data_dir)}
    again = tfds_builders.prepare("shapes_world", data_dir, num_train_clips=8, num_validation_clips=2,
                                  clip_len=CLIP_LEN, world=TINY_WORLD, base_seed=100)
    assert os.fspath(again.data_dir) == os.fspath(builder.data_dir)
    assert stamp == {p: os.path.getmtime(os.path.join(builder.data_dir, p)) for p in os.listdir(builder.data_dir)}


def _flat_video(num_frames: int, height: int, width: int, offset: int) -> np.ndarray:
    """Each frame one flat colour (survives lossy mp4 and resizing almost exactly)."""
    colours = [((offset + 23 * i) % 200 + 30, (97 * i + offset) % 200 + 30, 120) for i in range(num_frames)]
    return np.stack([np.full((height, width, 3), c, np.uint8) for c in colours])


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # imageio's ffmpeg subprocess (fork + exec)
def test_video_folder_keeps_good_clips_and_skips_each_bad_file_with_its_reason(tmp_path, caplog):
    videos = tmp_path / "videos"
    videos.mkdir()
    good = {"good_a.mp4": _flat_video(9, 32, 48, 0), "sub/good_b.mp4": _flat_video(8, 32, 32, 50)}
    (videos / "sub").mkdir()
    for file, frames in good.items():
        iio.imwrite(videos / file, frames, fps=8, extension=".mp4")
    iio.imwrite(videos / "short.mp4", _flat_video(3, 32, 32, 0), fps=8, extension=".mp4")
    iio.imwrite(videos / "uncaptioned.mp4", _flat_video(8, 32, 32, 0), fps=8, extension=".mp4")
    (videos / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    lines = [{"file": "good_a.mp4", "caption": "a flat\nvideo"}, {"file": "sub/good_b.mp4", "caption": "another"},
             {"file": "short.mp4", "caption": "too short"}, {"file": "corrupt.mp4", "caption": "broken"},
             {"file": "missing.mp4", "caption": "nowhere"}]
    (videos / "captions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    data_dir = str(tmp_path / "tfds")

    with caplog.at_level(logging.WARNING):
        builder = tfds_builders.prepare("video_folder", data_dir, video_dir=str(videos), clip_len=4, frame_size=16)

    summary = tfds_builders.build_summary(builder)
    assert summary["skipped"] == {"unreadable": ["corrupt.mp4"], "too_short": ["short.mp4"],
                                  "no_caption": ["uncaptioned.mp4"], "missing_file": ["missing.mp4"]}
    assert summary["skipped_counts"] == {"unreadable": 1, "too_short": 1, "no_caption": 1, "missing_file": 1}
    assert summary["videos_found"] == 4 + 1 and summary["videos_used"] == 2 and summary["clips_written"] == 4
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for file in ["corrupt.mp4", "short.mp4", "uncaptioned.mp4", "missing.mp4"]:
        assert file in warned

    source = tfds.data_source(tfds_builders.data_source_name(builder), split="train", data_dir=data_dir)
    records = {int(r["id"]): r for r in (source[i] for i in range(len(source)))}
    index = summary["video_index"]
    stride = tfds_builders.CLIP_ID_STRIDE
    expected = {index["good_a.mp4"] * stride + k: ("good_a.mp4", k) for k in range(2)}  # 9 frames -> 2 clips
    expected.update({index["sub/good_b.mp4"] * stride + k: ("sub/good_b.mp4", k) for k in range(2)})
    assert set(records) == set(expected)
    for clip_id, (file, k) in expected.items():
        r = records[clip_id]
        assert r["frames"].shape == (4, 16, 16, 3) and r["frames"].dtype == np.uint8
        caption = "a flat video" if file == "good_a.mp4" else "another"
        assert tfds_builders.split_captions(r["captions"]) == [caption] * 4
        source_colours = good[file][4 * k:4 * k + 4, 0, 0].astype(float)  # flat frames: one colour each
        np.testing.assert_allclose(r["frames"].reshape(4, -1, 3).mean(1), source_colours, atol=6)
    assert "tensorflow" not in sys.modules


# ------------------------------------------------------------------------------------------------ pipeline

def _train_source(shapes_data):
    builder, data_dir = shapes_data
    return tfds.data_source(tfds_builders.data_source_name(builder), split=tfds.split_for_jax_process("train"),
                            data_dir=data_dir)


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_train_batches_have_the_documented_keys_shapes_and_dtypes(shapes_data):
    ds = pipeline.make_train_dataset(_train_source(shapes_data), window_len=WINDOW, batch_size=3, seed=0,
                                     tokenize=TOKENIZE)
    for batch in _take(iter(ds), 4):  # 12 windows > 8 clips: crosses an epoch
        assert set(batch) == {"frames", "tokens", "steady"}
        assert batch["steady"].shape == (3,) and batch["steady"].dtype == np.bool_
        assert batch["frames"].shape == (3, WINDOW, 16, 16, 3) and batch["frames"].dtype == np.uint8
        assert batch["tokens"].shape == (3, TEXT_LEN) and batch["tokens"].dtype == np.int32
    finite = pipeline.make_train_dataset(_train_source(shapes_data), window_len=WINDOW, batch_size=3, seed=0,
                                         tokenize=TOKENIZE, num_epochs=1)
    assert len(list(finite)) == 8 // 3  # drop_remainder


def test_windows_are_consecutive_clip_frames_captioned_by_their_last_frame(shapes_data):
    ds = pipeline.make_train_dataset(_train_source(shapes_data), window_len=WINDOW, batch_size=4, seed=3,
                                     tokenize=TOKENIZE, with_provenance=True)
    starts, first_differs = set(), 0
    for batch in _take(iter(ds), 6):
        for frames, tokens, clip_id, start, steady in zip(batch["frames"], batch["tokens"], batch["id"],
                                                          batch["start"], batch["steady"]):
            clip = shapes.render(int(clip_id), CLIP_LEN, TINY_WORLD)
            assert 0 <= start <= CLIP_LEN - WINDOW
            np.testing.assert_array_equal(frames, clip.frames[start:start + WINDOW])
            last = clip.captions[start + WINDOW - 1]
            assert decode_tokens(tokens) == last
            np.testing.assert_array_equal(tokens, tokenize_bytes([last], TEXT_LEN)[0])
            assert bool(steady) == all(c == last for c in clip.captions[start:start + WINDOW])
            starts.add(int(start))
            first_differs += clip.captions[start] != last
    assert len(starts) > 3, f"window starts are not random: {starts}"
    assert first_differs > 0, "no window had a switch inside: the last-frame rule was not exercised"
    assert first_differs < 24, "every window had a switch inside: the steady flag was only tested False"


def test_reworded_captions_change_only_the_tokens_not_the_windows(shapes_data):
    from streamdit_jax.shapes_wording import TrainingRewording

    tokenize = functools.partial(tokenize_bytes, max_len=160)  # the longest wording whole (TOKENIZE cuts it)

    def batches(reword):
        return _take(iter(pipeline.make_train_dataset(_train_source(shapes_data), window_len=WINDOW, batch_size=4,
                                                      seed=3, tokenize=tokenize, with_provenance=True,
                                                      reword=reword)), 3)

    plain, varied = batches(None), batches(TrainingRewording(canonical_prob=0.0))
    reworded = 0
    for a, b in zip(plain, varied):
        for key in ("frames", "id", "start", "steady"):  # the steady flag compares the captions as rendered
            np.testing.assert_array_equal(a[key], b[key])
        for tokens_a, tokens_b in zip(a["tokens"], b["tokens"]):
            canonical, text = decode_tokens(tokens_a), decode_tokens(tokens_b)
            obj = shapes.parse_caption(canonical)[0]
            reworded += text != canonical
            # the reworded prompt still names the window's last caption (some wording of each attribute)
            vocab = wording.vocabulary("train")
            assert any(w in text for w in vocab.colours[obj.colour]), (canonical, text)
            assert any(w in text for w in vocab.directions[obj.motion]), (canonical, text)
    assert reworded >= 6, "the rewording was not applied"


def test_pipeline_is_a_pure_function_of_the_seed(shapes_data):
    def batches(seed):
        return _take(iter(pipeline.make_train_dataset(_train_source(shapes_data), window_len=WINDOW, batch_size=2,
                                                      seed=seed, tokenize=TOKENIZE)), 3)

    a, b, c = batches(5), batches(5), batches(6)
    assert all(np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in x)
    assert not all(np.array_equal(x["frames"], y["frames"]) for x, y in zip(a, c))


def test_restored_iterator_state_resumes_exactly(shapes_data):
    ds = pipeline.make_train_dataset(_train_source(shapes_data), window_len=WINDOW, batch_size=3, seed=11,
                                     tokenize=TOKENIZE)
    iterator = iter(ds)
    _take(iterator, 3)
    state = iterator.get_state()
    expected = _take(iterator, 2)
    fresh = iter(ds)
    fresh.set_state(state)
    restored = _take(fresh, 2)
    for x, y in zip(expected, restored):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert not np.array_equal(expected[0]["frames"], _take(iter(ds), 1)[0]["frames"])  # state mattered


def test_to_global_batch_shards_the_batch_axis_over_the_mesh():
    mesh = parallel.make_mesh()  # all 8 fake devices on "data"
    rng = np.random.default_rng(0)
    batch = {"frames": rng.integers(0, 255, (8, 2, 4, 4, 3), dtype=np.uint8),
             "tokens": rng.integers(0, 200, (8, 5), dtype=np.int32)}
    out = pipeline.to_global_batch(batch, mesh)
    for key, x in out.items():
        assert isinstance(x, jax.Array) and x.shape == batch[key].shape and x.dtype == batch[key].dtype
        np.testing.assert_array_equal(np.asarray(x), batch[key])
        assert x.sharding.spec[0] in ("data", ("data", "fsdp")) and len(x.addressable_shards) == 8
        assert x.addressable_shards[0].data.shape[0] == 1
    sharding = parallel.batch_sharding(mesh, 2)
    tokens = pipeline.to_global_batch({"tokens": batch["tokens"]}, sharding)["tokens"]
    assert tokens.sharding == sharding


def test_frames_to_float_maps_uint8_onto_minus_one_to_one_and_back_exactly():
    frames = np.arange(256, dtype=np.uint8).reshape(4, 4, 16)
    x = pixels.frames_to_float(frames)
    assert x.dtype == np.float32
    np.testing.assert_allclose([x.min(), x.max()], [-1.0, 1.0], atol=1e-6)
    np.testing.assert_array_equal(pixels.float_to_frames(x), frames)
    np.testing.assert_array_equal(pixels.float_to_frames(np.array([-3.0, 3.0])), [0, 255])
    np.testing.assert_allclose(np.asarray(pixels.frames_to_float(jax.numpy.asarray(frames))), x, atol=1e-6)
