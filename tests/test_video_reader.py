"""One video reader: the video_folder training data and video-to-video input get the same frames from a file."""
import json

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from streamdit_jax import video_reader
from streamdit_jax.data import tfds_builders
from streamdit_jax.sampling import video_io

FRAMES, HEIGHT, WIDTH, SIZE, CLIP_LEN = 8, 48, 80, 16, 4
OTHER_FILTERS = ("NEAREST", "BILINEAR", "BICUBIC", "LANCZOS", "HAMMING")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A real mp4, wider than tall (the centre crop matters) and full of fine detail (the filter matters)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (FRAMES, HEIGHT // 4, WIDTH // 4, 3), np.uint8)
    # 4x4 blocks survive the codec as detail; the shrink by 3 puts block edges inside output pixels
    frames = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)
    folder = tmp_path_factory.mktemp("videos")
    iio.imwrite(folder / "clip.mp4", frames, fps=8, extension=".mp4")
    (folder / "captions.jsonl").write_text(json.dumps({"file": "clip.mp4", "caption": "noise"}) + "\n")
    return folder


@pytest.fixture(scope="module")
def training(video, tmp_path_factory) -> np.ndarray:
    """The file's frames as the video_folder builder stores them (clips in id order, concatenated)."""
    data_dir = tmp_path_factory.mktemp("tfds")
    builder = tfds_builders.prepare("video_folder", str(data_dir), video_dir=str(video), clip_len=CLIP_LEN,
                                    frame_size=SIZE)
    source = tfds.data_source(tfds_builders.data_source_name(builder), split="train", data_dir=str(data_dir))
    records = sorted((source[i] for i in range(len(source))), key=lambda r: int(r["id"]))
    return np.concatenate([r["frames"] for r in records])


def _reference(path, resample) -> np.ndarray:
    """The decoded frames centre-cropped to a square and resized with ``resample``, independently of the library."""
    decoded = iio.imread(path, plugin="FFMPEG")
    left = (WIDTH - HEIGHT) // 2
    return np.stack([np.asarray(Image.fromarray(f[:, left:left + HEIGHT]).resize((SIZE, SIZE), resample))
                     for f in decoded])


def test_training_data_and_video_to_video_input_get_the_same_frames_of_a_file(video, training):
    v2v = video_io.read_video(str(video / "clip.mp4"), SIZE)
    assert training.shape == v2v.shape == (FRAMES, SIZE, SIZE, 3)
    np.testing.assert_array_equal(training, v2v)


def test_both_paths_use_the_area_filter_and_the_file_tells_filters_apart(video, training):
    """Pins the filter of each path: both equal the BOX reference, and on this file every other filter gives other
    frames, so either path switching filter fails here (and breaks the equality above)."""
    path = video / "clip.mp4"
    box = _reference(path, Image.Resampling.BOX)
    np.testing.assert_array_equal(video_io.read_video(str(path), SIZE), box)
    np.testing.assert_array_equal(training, box)
    for name in OTHER_FILTERS:
        other = _reference(path, getattr(Image.Resampling, name))
        assert np.abs(other.astype(int) - box).max() > 8, f"{name} gives the BOX frames on this file"


def test_max_frames_and_stride_take_the_same_frames_and_a_broken_file_is_a_value_error(video, tmp_path):
    first = video_io.read_video(str(video / "clip.mp4"), SIZE, max_frames=3)
    np.testing.assert_array_equal(first, video_io.read_video(str(video / "clip.mp4"), SIZE)[:3])
    strided = list(video_reader.iter_frames(str(video / "clip.mp4"), (SIZE, SIZE), frame_stride=2))
    np.testing.assert_array_equal(np.stack(strided), video_io.read_video(str(video / "clip.mp4"), SIZE)[::2])
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(ValueError, match="broken.mp4"):
        video_io.read_video(str(broken), SIZE)
