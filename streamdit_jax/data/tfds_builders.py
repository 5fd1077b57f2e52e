"""TFDS builders for StreamDiT training data, stored as array_record and read with `tfds.data_source` (no TensorFlow).

Buffered flow matching (Sec. 3-4 of the StreamDiT paper) trains on windows of consecutive frames with the prompt
that is active in them, so every example here is a fixed-length clip plus one caption per frame:

    frames      uint8 [clip_len, H, W, 3]   (Tensor, zlib-compressed)
    captions    Text: the per-frame captions joined with "\\n" (read back as bytes; `split_captions` undoes it)
    attributes  int32 [clip_len, max_objects, 6]   (shapes_world only: the ground truth of `shapes.render`)
    id          int64 (array_record readers return examples shuffled, so each carries where it came from)

Only Tensor/Text/scalar features are used: TFDS's Video and Image features need TensorFlow to encode or decode.

Two builders:
  * ``shapes_world``: the procedural world of `streamdit_jax.shapes_world` (clip i of train = seed base_seed + i).
  * ``video_folder``: a user's folder of videos plus ``captions.jsonl`` ({"file": "x.mp4", "caption": "..."} per
    line), cut into non-overlapping clips. Bad inputs are skipped with a warning and listed in
    ``build_summary.json`` inside the dataset directory.

Both are parameterised at run time by a BuilderConfig (`shapes_world_config`, `video_folder_config`); a config's
name encodes its parameters, so different parameters never share a directory. `prepare(name, data_dir, **kw)`
builds once (offline) and returns the builder; read with
``tfds.data_source(f"{name}/{builder.builder_config.name}", split=..., data_dir=data_dir)`` or
``builder.as_data_source(split)``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds

from streamdit_jax import shapes_world as shapes
from streamdit_jax import video_reader

VERSION = "1.0.0"
SUMMARY_FILE = "build_summary.json"
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm")
# video_folder ids: id = video_index * CLIP_ID_STRIDE + clip_index (video_index: see build_summary.json)
CLIP_ID_STRIDE = 1_000_000

_log = logging.getLogger(__name__)


def split_captions(captions: bytes | str) -> list[str]:
    """Per-frame captions from the stored Text feature (bytes as read back, or str)."""
    if isinstance(captions, bytes):
        captions = captions.decode("utf-8")
    return captions.split("\n")


def _digest(*values: Any) -> str:
    return hashlib.sha1(repr(values).encode()).hexdigest()[:8]


def _clip_features(clip_len: int, height: int, width: int, extra: dict | None = None) -> tfds.features.FeaturesDict:
    features = {
        "frames": tfds.features.Tensor(shape=(clip_len, height, width, 3), dtype=np.uint8,
                                       encoding=tfds.features.Encoding.ZLIB),
        "captions": tfds.features.Text(),
        "id": tfds.features.Scalar(dtype=np.int64),
    }
    return tfds.features.FeaturesDict({**features, **(extra or {})})


# ---------------------------------------------------------------------------------------------------- shapes_world

@dataclasses.dataclass(eq=False)
class ShapesWorldBuilderConfig(tfds.core.BuilderConfig):
    """Train clips use seeds base_seed + i, validation clips base_seed + num_train_clips + i."""

    num_train_clips: int = 2048
    num_validation_clips: int = 128
    clip_len: int = 64
    world: shapes.ShapesWorldConfig = shapes.ShapesWorldConfig()
    base_seed: int = 0


def shapes_world_config(*, num_train_clips: int = 2048, num_validation_clips: int = 128, clip_len: int = 64,
                        frame_size: int | None = None, world: shapes.ShapesWorldConfig | None = None,
                        base_seed: int = 0, name: str | None = None) -> ShapesWorldBuilderConfig:
    """A ShapesWorld config; `frame_size` alone is shorthand for world=ShapesWorldConfig(frame_size=...).

    The default name encodes every parameter, e.g. "f32_t64_n2048-128_s0_1a2b3c4d" (the hash covers `world`).
    """
    if world is None:
        world = shapes.ShapesWorldConfig() if frame_size is None else shapes.ShapesWorldConfig(frame_size=frame_size)
    elif frame_size is not None and frame_size != world.frame_size:
        raise ValueError(f"frame_size={frame_size} disagrees with world.frame_size={world.frame_size}")
    for key, value, low in (("num_train_clips", num_train_clips, 1), ("num_validation_clips", num_validation_clips, 0),
                            ("clip_len", clip_len, 1), ("base_seed", base_seed, 0)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{key} must be an int >= {low}, got {value!r}")
    if name is None:
        name = (f"f{world.frame_size}_t{clip_len}_n{num_train_clips}-{num_validation_clips}_s{base_seed}_"
                f"{_digest(world)}")
    return ShapesWorldBuilderConfig(name=name, num_train_clips=num_train_clips,
                                    num_validation_clips=num_validation_clips, clip_len=clip_len, world=world,
                                    base_seed=base_seed, description=f"shapes world clips: {world}")


class ShapesWorld(tfds.core.GeneratorBasedBuilder):
    """Clips of the procedural shapes world (`streamdit_jax.shapes_world`), with ground-truth attributes."""

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {str(VERSION): "Initial release."}
    url_infos = None  # nothing to download (and tfds's lookup of a checksums file needs importlib_resources)
    BUILDER_CONFIGS = [shapes_world_config(name="default")]

    def _info(self) -> tfds.core.DatasetInfo:
        cfg: ShapesWorldBuilderConfig = self.builder_config
        size, objects = cfg.world.frame_size, cfg.world.max_objects
        attributes = tfds.features.Tensor(shape=(cfg.clip_len, objects, shapes.NUM_ATTRIBUTES), dtype=np.int32,
                                          encoding=tfds.features.Encoding.ZLIB)
        return tfds.core.DatasetInfo(
            builder=self, description=__doc__.split("\n")[0],
            features=_clip_features(cfg.clip_len, size, size, {"attributes": attributes}))

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        cfg: ShapesWorldBuilderConfig = self.builder_config
        train = range(cfg.base_seed, cfg.base_seed + cfg.num_train_clips)
        splits = {"train": self._generate_examples(train)}
        if cfg.num_validation_clips:
            splits["validation"] = self._generate_examples(
                range(train.stop, train.stop + cfg.num_validation_clips))
        return splits

    def _generate_examples(self, seeds: range):
        cfg: ShapesWorldBuilderConfig = self.builder_config
        for seed in seeds:
            clip = shapes.render(seed, cfg.clip_len, cfg.world)
            yield seed, {"frames": clip.frames, "captions": "\n".join(clip.captions),
                         "attributes": clip.attributes, "id": seed}


# ---------------------------------------------------------------------------------------------------- video_folder

@dataclasses.dataclass(eq=False)
class VideoFolderBuilderConfig(tfds.core.BuilderConfig):
    """video_dir holds the videos and captions_file (relative to video_dir unless absolute).

    Frames are read by ``video_reader.iter_frames`` (as video-to-video input is): centre-cropped to the target
    aspect, resized to frame_size (height, width) (area filter when shrinking, bilinear when enlarging), every
    frame_stride-th frame is kept, and each video is cut into non-overlapping clips of clip_len frames (a remainder
    shorter than clip_len is dropped).
    """

    video_dir: str = ""
    captions_file: str = "captions.jsonl"
    clip_len: int = 64
    frame_size: tuple[int, int] = (32, 32)
    frame_stride: int = 1


def video_folder_config(video_dir: str, *, clip_len: int = 64, frame_size: int | tuple[int, int] = 32,
                        frame_stride: int = 1, captions_file: str = "captions.jsonl",
                        name: str | None = None) -> VideoFolderBuilderConfig:
    """A VideoFolder config; the default name encodes the folder (name + hash of its absolute path) and parameters."""
    video_dir = os.path.abspath(os.fspath(video_dir))
    if not os.path.isdir(video_dir):
        raise ValueError(f"video_dir {video_dir!r} is not a directory")
    size = (frame_size, frame_size) if isinstance(frame_size, int) else tuple(frame_size)
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ValueError(f"frame_size must be a positive int or (height, width), got {frame_size!r}")
    for key, value in (("clip_len", clip_len), ("frame_stride", frame_stride)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be an int >= 1, got {value!r}")
    if name is None:
        base = "".join(ch if ch.isalnum() else "_" for ch in os.path.basename(video_dir)) or "videos"
        name = (f"{base}_f{size[0]}x{size[1]}_t{clip_len}_k{frame_stride}_"
                f"{_digest(video_dir, captions_file)}")
    return VideoFolderBuilderConfig(name=name, video_dir=video_dir, captions_file=captions_file, clip_len=clip_len,
                                    frame_size=size, frame_stride=frame_stride,
                                    description=f"clips of the videos in {video_dir}")


def read_clips(path: str, clip_len: int, size: tuple[int, int], frame_stride: int = 1) -> Iterator[np.ndarray]:
    """Yield non-overlapping uint8 [clip_len, H, W, 3] clips of a video, streaming (one clip in memory at a time)."""
    clip = []
    for frame in video_reader.iter_frames(path, size, frame_stride):
        clip.append(frame)
        if len(clip) == clip_len:
            yield np.stack(clip)
            clip = []


def _first_line(error: BaseException) -> str:
    text = str(error).strip().split("\n")[0]
    return f"{type(error).__name__}: {text}"[:300]


class VideoFolder(tfds.core.GeneratorBasedBuilder):
    """Fixed-length clips of a user's captioned videos (split "train"); see VideoFolderBuilderConfig.

    Skipped (with a logging.warning naming the file and the reason, and listed in build_summary.json):
      missing_file (a jsonl line whose file does not exist), bad_caption_line (not JSON / no "file" or "caption"),
      duplicate_caption (a second line for the same file; the first wins), no_caption (a video with no line),
      unreadable (the decoder fails before one clip), too_short (fewer than clip_len kept frames).
    A video whose decoder fails after some clips keeps those clips and is listed under "truncated".
    """

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {str(VERSION): "Initial release."}
    url_infos = None  # nothing to download (and tfds's lookup of a checksums file needs importlib_resources)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._summary: dict[str, Any] | None = None

    def _info(self) -> tfds.core.DatasetInfo:
        cfg: VideoFolderBuilderConfig = self.builder_config
        if cfg is None:
            raise ValueError("VideoFolder needs a config: VideoFolder(config=video_folder_config(video_dir), ...)")
        return tfds.core.DatasetInfo(builder=self, description=self.__doc__.split("\n")[0],
                                     features=_clip_features(cfg.clip_len, *cfg.frame_size))

    def _skip(self, reason: str, file: str, detail: str = "") -> None:
        _log.warning("video_folder: skipping %s (%s%s)", file, reason, f": {detail}" if detail else "")
        self._summary["skipped"].setdefault(reason, []).append(file)

    def _captioned_videos(self) -> list[tuple[str, str]]:
        """(file relative to video_dir, caption) for every captioned video that exists, sorted by file."""
        cfg: VideoFolderBuilderConfig = self.builder_config
        root = cfg.video_dir
        on_disk = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root)
                         for f in files if f.lower().endswith(VIDEO_EXTENSIONS))
        captions: dict[str, str] = {}
        captions_path = os.path.join(root, cfg.captions_file)
        if not os.path.isfile(captions_path):
            raise ValueError(f"video_folder: captions file {captions_path!r} does not exist")
        with open(captions_path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    file, text = os.path.normpath(str(entry["file"])), str(entry["caption"])
                except (ValueError, KeyError, TypeError) as e:
                    self._skip("bad_caption_line", f"{cfg.captions_file}:{number}", _first_line(e))
                    continue
                if file in captions:
                    self._skip("duplicate_caption", file, f"line {number}; the first caption is kept")
                elif not os.path.isfile(os.path.join(root, file)):
                    self._skip("missing_file", file, f"named on line {number} of {cfg.captions_file}")
                else:
                    captions[file] = " ".join(text.split())  # one line: captions are stored "\n"-joined
        for file in on_disk:
            if file not in captions:
                self._skip("no_caption", file, f"no line in {cfg.captions_file}")
        self._summary["videos_found"] = len(on_disk)
        return sorted(captions.items())

    def check_source(self) -> str:
        """A cheap check before a build (nothing is written): ValueError naming the problem unless the captions file
        exists and at least one captioned video yields a clip. Videos are decoded in file order only up to their
        first clip, and the check stops at the first that has one, which it returns."""
        cfg: VideoFolderBuilderConfig = self.builder_config
        if not os.path.isfile(os.path.join(cfg.video_dir, cfg.captions_file)):
            raise ValueError(f"video_folder: {cfg.video_dir} has no {cfg.captions_file} (one JSON line per video: "
                             f'{{"file": "x.mp4", "caption": "..."}})')
        self._summary = self._new_summary()
        try:
            videos = self._captioned_videos()
            if not videos:
                raise ValueError(f"video_folder: no usable clip in {cfg.video_dir}: none of its "
                                 f"{self._summary['videos_found']} videos ({', '.join(VIDEO_EXTENSIONS)}) has a line "
                                 f"in {cfg.captions_file}; skipped: {self._summary['skipped'] or 'none'}")
            for file, _ in videos:
                clips = read_clips(os.path.join(cfg.video_dir, file), cfg.clip_len, cfg.frame_size, cfg.frame_stride)
                try:
                    next(clips)
                    return file
                except StopIteration:
                    self._skip("too_short", file, f"fewer than clip_len={cfg.clip_len} frames (stride "
                                                  f"{cfg.frame_stride})")
                except Exception as e:  # pylint: disable=broad-except  # as in the build: one bad file is skipped
                    self._skip("unreadable", file, _first_line(e))
                finally:
                    clips.close()
            raise ValueError(f"video_folder: no usable clip in {cfg.video_dir} (clips of clip_len={cfg.clip_len} "
                             f"frames): every captioned video was skipped: {self._summary['skipped']}")
        finally:
            self._summary = None

    @staticmethod
    def _new_summary() -> dict[str, Any]:
        return {"videos_found": 0, "videos_used": 0, "clips_written": 0, "skipped": {}, "truncated": [],
                "video_index": {}}

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        self._summary = self._new_summary()
        return {"train": self._generate_examples(self._captioned_videos())}

    def _generate_examples(self, videos: list[tuple[str, str]]):
        cfg: VideoFolderBuilderConfig = self.builder_config
        summary = self._summary
        for index, (file, text) in enumerate(videos):
            summary["video_index"][file] = index
            clips = 0
            try:
                for clip in read_clips(os.path.join(cfg.video_dir, file), cfg.clip_len, cfg.frame_size,
                                       cfg.frame_stride):
                    if clips >= CLIP_ID_STRIDE:
                        raise ValueError(f"{file} has more than {CLIP_ID_STRIDE} clips")
                    key = index * CLIP_ID_STRIDE + clips
                    yield key, {"frames": clip, "captions": "\n".join([text] * cfg.clip_len), "id": key}
                    clips += 1
            except Exception as e:  # pylint: disable=broad-except  # one bad file must not end the build
                if clips == 0:
                    self._skip("unreadable", file, _first_line(e))
                    continue
                _log.warning("video_folder: %s failed after %d clips (kept): %s", file, clips, _first_line(e))
                summary["truncated"].append(file)
            if clips == 0:
                self._skip("too_short", file, f"fewer than clip_len={cfg.clip_len} frames (stride "
                                              f"{cfg.frame_stride})")
                continue
            summary["videos_used"] += 1
            summary["clips_written"] += clips
        if summary["clips_written"] == 0:
            raise ValueError(f"video_folder: no usable clip in {cfg.video_dir}; skipped: {summary['skipped']}")

    def _post_download_and_prepare_hook(self) -> None:
        summary = dict(self._summary)
        summary["skipped_counts"] = {reason: len(files) for reason, files in summary["skipped"].items()}
        with open(os.path.join(os.fspath(self.data_dir), SUMMARY_FILE), "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1, sort_keys=True)
        _log.info("video_folder %s: %d of %d videos used, %d clips written, skipped %s",
                     self.builder_config.name, summary["videos_used"], summary["videos_found"],
                     summary["clips_written"], summary["skipped_counts"])


# ---------------------------------------------------------------------------------------------------- helpers

BUILDERS = {"shapes_world": (ShapesWorld, shapes_world_config), "video_folder": (VideoFolder, video_folder_config)}


def make_builder(name: str, data_dir: str, **config_kwargs) -> tfds.core.DatasetBuilder:
    """The builder `name` ("shapes_world" | "video_folder") with a config made from config_kwargs."""
    if name not in BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(BUILDERS)}")
    cls, make_config = BUILDERS[name]
    return cls(config=make_config(**config_kwargs), data_dir=os.fspath(data_dir))


def build_if_missing(builder: tfds.core.DatasetBuilder) -> tfds.core.DatasetBuilder:
    """download_and_prepare in array_record format unless already prepared; never touches the network."""
    if not builder.is_prepared():
        config = tfds.download.DownloadConfig(try_download_gcs=False, compute_stats=tfds.download.ComputeStatsMode.SKIP)
        builder.download_and_prepare(download_config=config, file_format="array_record")
    return builder


def prepare(name: str, data_dir: str, **config_kwargs) -> tfds.core.DatasetBuilder:
    """Build the dataset once (see `make_builder` for the arguments) and return its prepared builder."""
    return build_if_missing(make_builder(name, data_dir, **config_kwargs))


def build_summary(builder: tfds.core.DatasetBuilder) -> dict[str, Any]:
    """The video_folder build summary (counts, skipped files by reason, video_index) of a prepared builder."""
    path = os.path.join(os.fspath(builder.data_dir), SUMMARY_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {SUMMARY_FILE} in {builder.data_dir} (is it a prepared video_folder dataset?)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def data_source_name(builder: tfds.core.DatasetBuilder) -> str:
    """The name to pass to tfds.data_source (with the same data_dir) to read this builder's data."""
    return f"{builder.name}/{builder.builder_config.name}"
