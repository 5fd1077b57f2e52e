"""Training configuration as frozen dataclasses (the library boundary; experiments convert ConfigDicts with from_dict)."""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Mapping, Optional

from streamdit_jax import shapes_wording, shapes_world as shapes
from streamdit_jax.models.config import (ModelConfig, check_bool, check_int, check_real, check_str,
                                         get_model_config, is_int)
from streamdit_jax.parallel import MeshConfig
from streamdit_jax.partition import ChunkSizeMix, NoiseSchedule, Partition

# the datasets prepare_dataset can build (tfds_builders.BUILDERS; not imported here: tfds is a heavy import)
DATASET_NAMES = ("shapes_world", "video_folder")
CAPTION_WORDINGS = ("canonical", "varied")
TEXT_SOURCES = ("on_the_fly", "precomputed")  # also the valid data.latent_source values
# One clip is one array_record example, rendered / decoded in memory and read back whole for every training window:
# a clip of clip_len x height x width x 3 bytes must fit in this.
MAX_CLIP_BYTES = 256 * 2 ** 20
# the shapes world draws objects frame_size // 4 pixels wide, and needs them >= 3 (shapes.ShapesWorldConfig)
MIN_SHAPES_FRAME_SIZE = 12


def _size(num_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if num_bytes < 1024 or unit == "PiB":
            return f"{num_bytes:.3g} {unit}"
        num_bytes /= 1024
    return f"{num_bytes} B"  # unreachable


def _tuple(name: str, value) -> tuple:
    """Lists (JSON, ConfigDict) as tuples: a frozen config stays hashable and equal to the one that was saved."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise ValueError(f"{name}={value!r} must be a sequence")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay, global-norm gradient clipping."""

    learning_rate: float = 3e-4
    warmup_steps: int = 100
    end_lr_factor: float = 0.1  # the cosine ends at learning_rate * end_lr_factor
    weight_decay: float = 0.01
    b1: float = 0.9
    b2: float = 0.99
    grad_clip: float = 1.0

    def __post_init__(self):
        check_real("optim.learning_rate", self.learning_rate, 0, low_open=True)
        check_int("optim.warmup_steps", self.warmup_steps, 0)
        check_real("optim.end_lr_factor", self.end_lr_factor, 0, 1, why="the cosine ends at learning_rate x this")
        check_real("optim.weight_decay", self.weight_decay, 0)
        check_real("optim.b1", self.b1, 0, 1, high_open=True)
        check_real("optim.b2", self.b2, 0, 1, high_open=True)
        check_real("optim.grad_clip", self.grad_clip, 0, low_open=True, why="the global gradient norm is clipped to it")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which TFDS dataset to train on and, for the built-in shapes world, how to build it."""

    name: str = "shapes_world"  # shapes_world | video_folder
    data_dir: str = ""  # '' -> WORKDIR/data
    video_dir: str = ""  # video_folder only: folder of .mp4 + captions.jsonl
    frame_size: int = 32  # frame height (and width, unless frame_width)
    frame_width: int = 0  # video_folder only: frames frame_size x frame_width (Wan2.1's 480 x 832); 0 = square
    clip_len: int = 64
    """Frames per clip: one array_record example, read whole for every training window (at most MAX_CLIP_BYTES)."""
    num_clips: int = 512
    num_val_clips: int = 16
    """shapes_world: clips rendered for the train and validation splits."""
    two_object_prob: float = 0.0
    # shapes_world only: how often, and which, attributes change inside a clip (shapes.ShapesWorldConfig)
    mean_switch_interval: float = 48.0
    switch_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # shapes_world only: "canonical" trains on the world's captions as rendered ("a red circle moving left");
    # "varied" rewords each training window's caption with shapes_wording.paraphrase (train split), keeping the
    # canonical wording with probability canonical_caption_prob, so a pretrained text encoder learns meanings.
    caption_wording: str = "canonical"
    canonical_caption_prob: float = 0.25
    # "on_the_fly": batches carry the captions' tokens and every step runs the text encoder. "precomputed": a frozen
    # encoder's embeddings of every caption, written once beside the dataset by experiments.precompute_text, are read
    # with the frames; the step never runs the encoder and its weights are never placed on the mesh (what a
    # multi-billion-parameter encoder needs).
    text_source: str = "on_the_fly"
    # "on_the_fly": the train step encodes each window's frames with the autoencoder. "precomputed": the latents of
    # every whole clip, written once beside the dataset by experiments.precompute_latents, are read instead of frames
    # (data.latent_clips); the step never runs the autoencoder. A causal video VAE (Wan's) needs this: it must see a
    # clip from its first frame, as a stream's decoder does.
    latent_source: str = "on_the_fly"
    seed: int = 0

    def __post_init__(self):
        # JSON (checkpoint metadata) and ConfigDict hand sequences back as lists; a tuple keeps the config hashable
        # and equal to the one that was saved.
        object.__setattr__(self, "switch_weights", _tuple("data.switch_weights", self.switch_weights))
        check_str("data.name", self.name, DATASET_NAMES)
        check_str("data.data_dir", self.data_dir)
        check_str("data.video_dir", self.video_dir)
        shapes_world = self.name == "shapes_world"
        check_int("data.frame_size", self.frame_size, MIN_SHAPES_FRAME_SIZE if shapes_world else 1,
                  why="the shapes world draws objects frame_size // 4 >= 3 pixels wide" if shapes_world else "")
        check_int("data.frame_width", self.frame_width, 0, why="0 = square frames, frame_size wide")
        if shapes_world and self.frame_width not in (0, self.frame_size):
            raise ValueError(f"data.frame_width={self.frame_width}: the shapes world renders square frames "
                             f"(data.frame_size={self.frame_size} wide); leave it 0")
        check_int("data.clip_len", self.clip_len, 1)
        height, width = self.frame_hw
        frame_bytes = 3 * height * width
        max_len = MAX_CLIP_BYTES // frame_bytes
        if max_len < 1:
            raise ValueError(f"data.frame_size={self.frame_size}, data.frame_width={self.frame_width}: one "
                             f"{height}x{width}x3 frame is {_size(frame_bytes)}, more than a whole clip may hold "
                             f"({_size(MAX_CLIP_BYTES)}: a clip is one array_record example, built in memory)")
        if self.clip_len > max_len:
            raise ValueError(f"data.clip_len={self.clip_len} must be <= {max_len} at {height}x{width} frames: a clip "
                             f"is one array_record example, built in memory, of at most {_size(MAX_CLIP_BYTES)}, "
                             f"and {self.clip_len} frames of {height}x{width}x3 are "
                             f"{_size(self.clip_len * frame_bytes)}")
        check_int("data.num_clips", self.num_clips, 1)
        check_int("data.num_val_clips", self.num_val_clips, 0)
        check_real("data.two_object_prob", self.two_object_prob, 0, 1)
        interval = self.mean_switch_interval
        if (isinstance(interval, bool) or not isinstance(interval, (int, float)) or math.isnan(interval)
                or interval < 1):
            raise ValueError(f"data.mean_switch_interval={interval!r} must be >= 1 (the mean number of frames "
                             f"between attribute switches; inf = never)")
        weights = self.switch_weights
        if (len(weights) != 3 or not all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                         and math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0):
            raise ValueError(f"data.switch_weights={weights!r} must be 3 finite weights >= 0 with a positive sum "
                             f"(relative odds of a shape, colour and motion switch)")
        check_str("data.caption_wording", self.caption_wording, CAPTION_WORDINGS)
        if self.caption_wording != "canonical" and not shapes_world:
            raise ValueError(f"data.caption_wording={self.caption_wording!r} needs data.name='shapes_world' (it rewords "
                             f"the world's canonical captions); data.name={self.name!r} takes its captions as written")
        check_real("data.canonical_caption_prob", self.canonical_caption_prob, 0, 1)
        check_str("data.text_source", self.text_source, TEXT_SOURCES)
        check_str("data.latent_source", self.latent_source, TEXT_SOURCES)
        if self.text_source == "precomputed" and self.caption_wording == "varied":
            raise ValueError("data.text_source='precomputed' cannot go with data.caption_wording='varied': varied "
                             "wording rewords each training window's caption at random, so its embeddings cannot be "
                             "computed ahead; use data.caption_wording='canonical' or data.text_source='on_the_fly'")
        check_int("data.seed", self.seed, 0)
        if shapes_world:  # anything else the world itself refuses
            try:
                self.world()
            except ValueError as e:
                raise ValueError(f"data (shapes world): {e}") from None

    def world(self) -> shapes.ShapesWorldConfig:
        """The shapes world these settings describe (data.name = shapes_world)."""
        return shapes.ShapesWorldConfig(frame_size=self.frame_size, two_object_prob=self.two_object_prob,
                                        mean_switch_interval=self.mean_switch_interval,
                                        switch_weights=self.switch_weights)

    def caption_rewording(self) -> Optional[shapes_wording.TrainingRewording]:
        """The data pipeline's caption transform (None: captions as written), per ``caption_wording``."""
        if self.caption_wording == "varied":
            return shapes_wording.TrainingRewording(self.canonical_caption_prob)
        return None

    @property
    def frame_hw(self) -> tuple[int, int]:
        """(height, width) of every frame."""
        return self.frame_size, self.frame_width or self.frame_size


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Multistep distillation (Sec. 4.2, STREAMDIT.md section 7): the frozen teacher's ``steps_per_chunk`` guided
    micro steps of the scheme (K, c, N = (B - K) / c) become ONE unguided student step per macro step.

    The paper's scheme is K=0, c=2, N=8, s=16 with guidance (T = 128 steps) -> s=1 (8 steps). ``teacher`` is the
    teacher's training workdir (the entry point's --teacher flag fills it in).
    """

    teacher: str = ""
    chunk: int = 2
    steps_per_chunk: int = 16
    reference_frames: int = 0
    guidance: float = 3.0

    def __post_init__(self):
        check_str("distill.teacher", self.teacher)
        check_int("distill.chunk", self.chunk, 1)
        check_int("distill.steps_per_chunk", self.steps_per_chunk, 1,
                  why="the teacher's micro steps per macro step; the student takes 1")
        check_int("distill.reference_frames", self.reference_frames, 0)
        check_real("distill.guidance", self.guidance, 1, why="1 = no guidance")


# TrainConfig's model when none is named: the defaults of ModelConfig with the latent channels of the default patch
# autoencoder (3 * autoencoder_factor^2 = 12), so that TrainConfig() is valid as it stands.
DEFAULT_MODEL = ModelConfig(latent_channels=12)


def base_model_config(name: Optional[str] = None) -> ModelConfig:
    """The model config ``model.name`` picks (MODEL_CONFIGS or an alias of one), or DEFAULT_MODEL when no name is
    given."""
    if name is None:
        return DEFAULT_MODEL
    try:
        return get_model_config(name)  # a preset, or an alias of one (the released models' names: "wan2.1_1.3b")
    except ValueError as e:
        raise ValueError(f"model.name={name!r}: {e}") from None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = DEFAULT_MODEL
    optim: OptimConfig = OptimConfig()
    data: DataConfig = DataConfig()
    mesh: MeshConfig = MeshConfig()
    buffer_len: int = 16  # B latent frames per example
    reference_frames: int = 0  # K
    chunk_sizes: tuple[int, ...] = (1, 2, 4, 8, 16)
    chunk_probs: Optional[tuple[float, ...]] = None
    # plain T2V examples (c = B - K) only from windows whose caption holds at every frame (batch["steady"]); the
    # others draw among the remaining sizes. Why: a window is captioned by its newest frame, so one with a switch
    # teaches T2V a caption its older frames do not show. Measured (WORKSPACE.md, the steady-T2V fine-tune): training with it
    # made the bundled model hold and turn to the prompt's direction over long streams.
    t2v_steady_windows: bool = False
    schedule: NoiseSchedule = NoiseSchedule()
    text_dropout: float = 0.1
    ema_decay: float = 0.999
    ema_warmup: bool = True  # decay min(ema_decay, (1 + step) / (10 + step)); see steps.ema_decay_at
    # patch autoencoder: frames HxWx3 -> latents H/f x W/f x 3f^2; 0 = batches carry precomputed "latents"
    autoencoder_factor: int = 2
    # learned autoencoder directory (experiments.train_autoencoder): replaces the patch autoencoder (factor must be
    # 0). Training copies it into WORKDIR/autoencoder and exports carry it, so a checkpoint is self-contained.
    autoencoder: str = ""
    batch_size: int = 8  # global
    total_steps: int = 1000
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 200
    keep_checkpoints: int = 3
    async_checkpoint: bool = True
    sample_every: int = 500  # 0 = never
    sample_steps: int = 16  # T of the uniform T2V used for the sample GIF
    distill: Optional[DistillConfig] = None  # set: the loop distills a teacher instead of training from data
    # fine-tuning: a checkpoint (training workdir or inference export) whose EMA parameters start a fresh run
    # (new optimiser state, step 0); ignored once WORKDIR holds a checkpoint of its own (resume wins)
    init_from: str = ""
    # with init_from: the parameters (dotted names as in a safetensors export, e.g.
    # "denoiser.blocks.plain.cross.k.kernel", each matched in full by one of these regular expressions) that start
    # from this run's fresh initialisation instead of the checkpoint, e.g. the cross-attention keys/values and the
    # pooled-text projection when the text encoder is swapped. The checkpoint's model may then differ in model.text.
    init_fresh: tuple[str, ...] = ()

    def __post_init__(self):
        for name, cls in (("model", ModelConfig), ("optim", OptimConfig), ("data", DataConfig), ("mesh", MeshConfig),
                          ("schedule", NoiseSchedule)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"{name}={getattr(self, name)!r} must be a {cls.__name__}")
        if self.distill is not None and not isinstance(self.distill, DistillConfig):
            raise ValueError(f"distill={self.distill!r} must be a DistillConfig or None")
        object.__setattr__(self, "chunk_sizes", _tuple("chunk_sizes", self.chunk_sizes))
        if self.chunk_probs is not None:
            object.__setattr__(self, "chunk_probs", _tuple("chunk_probs", self.chunk_probs))
        check_int("buffer_len", self.buffer_len, 1, why="latent frames per training example")
        check_int("reference_frames", self.reference_frames, 0, self.buffer_len - 1,
                  why=f"the K clean frames at the old end of the buffer_len={self.buffer_len}-frame buffer")
        if self.chunk_probs is not None and not all(
                isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) for p in self.chunk_probs):
            raise ValueError(f"chunk_probs={self.chunk_probs!r} must be finite numbers (or None: uniform)")
        mix = self.mix()  # validates chunk sizes against B - K
        check_bool("t2v_steady_windows", self.t2v_steady_windows)
        if self.t2v_steady_windows:
            try:
                mix.check_t2v_can_be_refused()
            except ValueError as e:
                raise ValueError(f"t2v_steady_windows=True (windows with a prompt switch are refused T2V): {e}; "
                                 f"chunk_probs={self.chunk_probs}") from None
        check_real("text_dropout", self.text_dropout, 0, 1, high_open=True)
        check_real("ema_decay", self.ema_decay, 0, 1, high_open=True)
        check_bool("ema_warmup", self.ema_warmup)
        check_int("autoencoder_factor", self.autoencoder_factor, 0,
                  why="the patch autoencoder's factor; 0 = a learned autoencoder or precomputed latents")
        check_str("autoencoder", self.autoencoder)
        check_int("batch_size", self.batch_size, 1, why="the global batch")
        check_int("total_steps", self.total_steps, 0)
        check_int("seed", self.seed, 0)
        counts = {"log_every": self.log_every, "checkpoint_every": self.checkpoint_every,
                  "keep_checkpoints": self.keep_checkpoints, "sample_steps": self.sample_steps}
        bad = {k: v for k, v in counts.items() if not is_int(v) or v < 1}
        if bad or not is_int(self.sample_every) or self.sample_every < 0:
            raise ValueError(f"{bad or {'sample_every': self.sample_every}}: log_every, checkpoint_every, "
                             f"keep_checkpoints and sample_steps must be integers >= 1, sample_every >= 0 (0 = never)")
        check_bool("async_checkpoint", self.async_checkpoint)
        check_str("init_from", self.init_from)
        object.__setattr__(self, "init_fresh", _tuple("init_fresh", self.init_fresh))
        for pattern in self.init_fresh:
            check_str("init_fresh entry", pattern)
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"init_fresh entry {pattern!r} is not a regular expression: {e}") from None
        if self.autoencoder_factor:  # the token grid is known without loading anything: check the window now
            for name, size in zip(("frame_size", "frame_width"), self.data.frame_hw):
                if size % self.autoencoder_factor:
                    raise ValueError(f"data.{name}={size} is not divisible by autoencoder_factor="
                                     f"{self.autoencoder_factor}")
            height, width = (s // self.autoencoder_factor for s in self.data.frame_hw)
            self.model.resolved_window(self.model.token_grid((self.buffer_len, height, width)))
        if self.data.text_source == "precomputed":
            from streamdit_jax.models.text import TEXT_ENCODERS, is_trainable  # jax + flax: imported when needed
            if is_trainable(self.model.text):
                frozen = [k for k in TEXT_ENCODERS if not is_trainable(dataclasses.replace(self.model.text, kind=k))]
                raise ValueError(f"data.text_source='precomputed' needs a frozen text encoder, but model.text.kind="
                                 f"{self.model.text.kind!r} is trained with the DiT (its embeddings change every "
                                 f"step); use a frozen kind ({', '.join(map(repr, frozen))}) or "
                                 f"data.text_source='on_the_fly'")
        if self.data.latent_source == "precomputed" and not (self.autoencoder or self.autoencoder_factor):
            raise ValueError("data.latent_source='precomputed' needs the autoencoder that writes the latents (and "
                             "decodes previews): set autoencoder (a directory) or autoencoder_factor")
        if self.data.clip_len < self.buffer_len:
            raise ValueError(f"data.clip_len={self.data.clip_len} is shorter than buffer_len={self.buffer_len}")
        if self.autoencoder and self.autoencoder_factor:
            raise ValueError(f"autoencoder={self.autoencoder!r} (learned) and autoencoder_factor="
                             f"{self.autoencoder_factor} (patch) are exclusive: set autoencoder_factor=0")
        expected = 3 * self.autoencoder_factor ** 2
        if self.autoencoder_factor and self.model.latent_channels != expected:
            raise ValueError(f"model.latent_channels={self.model.latent_channels} does not match the patch "
                             f"autoencoder (3 * factor^2 = {expected} for autoencoder_factor={self.autoencoder_factor})")
        if self.distill is not None:
            if self.distill.reference_frames != self.reference_frames:
                raise ValueError(f"distill.reference_frames={self.distill.reference_frames} differs from "
                                 f"reference_frames={self.reference_frames}: a student streams with reference_frames "
                                 f"(a distillation's are its teacher's), so it must be distilled with the same K; use "
                                 f"distill.reference_frames={self.reference_frames}")
            if self.distill.chunk not in self.chunk_sizes:
                raise ValueError(f"distill.chunk={self.distill.chunk} is not a chunk size the teacher was trained "
                                 f"with: {tuple(self.chunk_sizes)}")
            self.distill_partition()  # raises naming an invalid scheme
            if self.init_from:
                raise ValueError(f"init_from={self.init_from!r} and distill are exclusive: a distilled student "
                                 f"always starts from its teacher")

    def make_autoencoder(self):
        """The frames <-> latents autoencoder of this config: PatchAutoencoder(autoencoder_factor), or the one in
        the directory ``autoencoder`` (learned per-frame, or a Wan VAE: ``models.autoencoder_dirs``) (its latent channels checked against the model). ValueError naming the problem, also
        when batches carry precomputed latents (neither is set)."""
        from streamdit_jax.models.autoencoder import PatchAutoencoder
        from streamdit_jax.models.autoencoder_dirs import latent_channels, load_video_autoencoder
        if self.autoencoder_factor:
            return PatchAutoencoder(self.autoencoder_factor)
        if not self.autoencoder:
            raise ValueError("this config has no autoencoder (autoencoder_factor=0 and autoencoder=''): its "
                             "batches carry precomputed latents")
        ae = load_video_autoencoder(self.autoencoder)
        if latent_channels(ae) != self.model.latent_channels:
            raise ValueError(f"model.latent_channels={self.model.latent_channels} does not match the "
                             f"autoencoder {self.autoencoder!r} ({latent_channels(ae)} channels)")
        return ae

    def distill_partition(self) -> Partition:
        """The teacher's scheme (K, N, c, s) of the distillation (the student runs the same with s = 1)."""
        d = self.distill
        try:
            return Partition.from_buffer(self.buffer_len, d.chunk, d.steps_per_chunk, d.reference_frames)
        except ValueError as e:
            raise ValueError(f"invalid distillation scheme: {e}") from e

    def mix(self) -> ChunkSizeMix:
        return ChunkSizeMix(self.buffer_len, tuple(self.chunk_sizes),
                            None if self.chunk_probs is None else tuple(self.chunk_probs), self.reference_frames)

    def to_dict(self) -> dict:
        """Plain nested dict (JSON-able) that from_dict reads back to an equal config."""
        d = dataclasses.asdict(self)
        d["mesh"] = dict(self.mesh.axes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Builds the config from a nested mapping (a saved config, or a ConfigDict's to_dict()).

        ``model.name`` picks the base model config (MODEL_CONFIGS; none: DEFAULT_MODEL) that the other model keys
        override; a model or model.text key that is None keeps the base's value (experiments' generated ConfigDicts
        hold such typed placeholders for every field they do not set). ``distill``: None, or a mapping whose keys
        that are None take DistillConfig's defaults (all None: no distillation). Unknown keys raise ValueError
        naming them (absl's lock_config catches them earlier on the command line)."""
        d = _mapping(d, "config")
        model = {k: v for k, v in _mapping(d.pop("model", None) or {}, "model").items() if v is not None}
        base = base_model_config(model.pop("name", None))
        if "text" in model:
            text = {k: v for k, v in _mapping(model["text"], "model.text").items() if v is not None}
            model["text"] = _replace(base.text, text, "model.text")
        kw = {"model": _replace(base, model, "model")}
        if "optim" in d:
            kw["optim"] = _build(OptimConfig, _mapping(d.pop("optim"), "optim"), "optim")
        if "data" in d:
            kw["data"] = _build(DataConfig, _mapping(d.pop("data"), "data"), "data")
        if "mesh" in d:
            mesh = d.pop("mesh")
            kw["mesh"] = MeshConfig(tuple(_mapping(mesh, "mesh").items())) if mesh else MeshConfig()
        if "schedule" in d:
            kw["schedule"] = _build(NoiseSchedule, _mapping(d.pop("schedule"), "schedule"), "schedule")
        if "distill" in d:
            distill = {k: v for k, v in _mapping(d.pop("distill") or {}, "distill").items() if v is not None}
            kw["distill"] = _build(DistillConfig, distill, "distill") if distill else None
        kw.update(d)
        return _build(cls, kw, "config")


def _mapping(value, where: str) -> dict:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}={value!r} must be a mapping of its fields")
    return dict(value)


def _check_keys(cls, d, where):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {where} keys {unknown}; valid keys: {sorted(names)}")


def _build(cls, d, where):
    _check_keys(cls, d, where)
    return cls(**d)


def _replace(obj, d, where):
    _check_keys(type(obj), d, where)
    return dataclasses.replace(obj, **d)
