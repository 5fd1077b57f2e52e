"""Training configuration as frozen dataclasses (the library boundary; experiments convert ConfigDicts with from_dict)."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from streamdit_jax.models.config import ModelConfig, TextEncoderConfig, get_model_config
from streamdit_jax.parallel import MeshConfig
from streamdit_jax.partition import ChunkSizeMix, NoiseSchedule, Partition


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
        if not self.learning_rate > 0 or self.warmup_steps < 0:
            raise ValueError(f"optim.learning_rate={self.learning_rate} must be > 0 and optim.warmup_steps="
                             f"{self.warmup_steps} >= 0")
        if not 0 <= self.end_lr_factor <= 1 or self.weight_decay < 0 or not self.grad_clip > 0:
            raise ValueError(f"optim.end_lr_factor={self.end_lr_factor} must be in [0, 1], optim.weight_decay="
                             f"{self.weight_decay} >= 0, optim.grad_clip={self.grad_clip} > 0")
        if not (0 <= self.b1 < 1 and 0 <= self.b2 < 1):
            raise ValueError(f"optim.b1={self.b1} and optim.b2={self.b2} must be in [0, 1)")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which TFDS dataset to train on and, for the built-in shapes world, how to build it."""

    name: str = "shapes_world"  # shapes_world | video_folder
    data_dir: str = ""  # '' -> WORKDIR/data
    video_dir: str = ""  # video_folder only: folder of .mp4 + captions.jsonl
    frame_size: int = 32
    clip_len: int = 64
    num_clips: int = 512
    num_val_clips: int = 16
    two_object_prob: float = 0.0
    # shapes_world only: how often, and which, attributes change inside a clip (shapes.ShapesWorldConfig)
    mean_switch_interval: float = 48.0
    switch_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    seed: int = 0

    def __post_init__(self):
        # JSON (checkpoint metadata) and ConfigDict hand sequences back as lists; a tuple keeps the config hashable
        # and equal to the one that was saved.
        object.__setattr__(self, "switch_weights", tuple(self.switch_weights))


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
        if self.steps_per_chunk < 1:
            raise ValueError(f"distill.steps_per_chunk={self.steps_per_chunk} must be >= 1")
        if self.guidance < 1.0:
            raise ValueError(f"distill.guidance={self.guidance} must be >= 1 (1 = no guidance)")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    data: DataConfig = DataConfig()
    mesh: MeshConfig = MeshConfig()
    buffer_len: int = 16  # B latent frames per example
    reference_frames: int = 0  # K
    chunk_sizes: tuple[int, ...] = (1, 2, 4, 8, 16)
    chunk_probs: Optional[tuple[float, ...]] = None
    # plain T2V examples (c = B - K) only from windows whose caption holds at every frame (batch["steady"]); the
    # others draw among the remaining sizes. Why: a window is captioned by its newest frame, so one with a switch
    # teaches T2V a caption its older frames do not show. Measured (WORKSPACE.md "Session 8"): the fine-tune with it
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

    def __post_init__(self):
        mix = self.mix()  # validates chunk sizes against B - K
        if self.t2v_steady_windows:
            try:
                mix.check_t2v_can_be_refused()
            except ValueError as e:
                raise ValueError(f"t2v_steady_windows=True (windows with a prompt switch are refused T2V): {e}; "
                                 f"chunk_probs={self.chunk_probs}") from None
        if not 0 <= self.text_dropout < 1:
            raise ValueError(f"text_dropout={self.text_dropout} must be in [0, 1)")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay={self.ema_decay} must be in [0, 1)")
        if self.batch_size < 1 or self.total_steps < 0:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1 and total_steps={self.total_steps} >= 0")
        counts = {"log_every": self.log_every, "checkpoint_every": self.checkpoint_every,
                  "keep_checkpoints": self.keep_checkpoints, "sample_steps": self.sample_steps}
        bad = {k: v for k, v in counts.items() if not isinstance(v, int) or v < 1}
        if bad or self.sample_every < 0:
            raise ValueError(f"{bad or {'sample_every': self.sample_every}}: log_every, checkpoint_every, "
                             f"keep_checkpoints and sample_steps must be >= 1, sample_every >= 0 (0 = never)")
        if self.autoencoder_factor:  # the token grid is known without loading anything: check the window now
            side = self.data.frame_size // self.autoencoder_factor
            if self.data.frame_size % self.autoencoder_factor:
                raise ValueError(f"data.frame_size={self.data.frame_size} is not divisible by autoencoder_factor="
                                 f"{self.autoencoder_factor}")
            self.model.resolved_window(self.model.token_grid((self.buffer_len, side, side)))
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
            if self.distill.chunk not in self.chunk_sizes:
                raise ValueError(f"distill.chunk={self.distill.chunk} is not a chunk size the teacher was trained "
                                 f"with: {tuple(self.chunk_sizes)}")
            self.distill_partition()  # raises naming an invalid scheme
            if self.init_from:
                raise ValueError(f"init_from={self.init_from!r} and distill are exclusive: a distilled student "
                                 f"always starts from its teacher")

    def make_autoencoder(self):
        """The frames <-> latents autoencoder of this config: PatchAutoencoder(autoencoder_factor), or the learned
        one in ``autoencoder`` (its latent channels checked against the model). ValueError naming the problem, also
        when batches carry precomputed latents (neither is set)."""
        from streamdit_jax.models.autoencoder import PatchAutoencoder
        from streamdit_jax.models.learned_autoencoder import load_autoencoder
        if self.autoencoder_factor:
            return PatchAutoencoder(self.autoencoder_factor)
        if not self.autoencoder:
            raise ValueError("this config has no autoencoder (autoencoder_factor=0 and autoencoder=''): its "
                             "batches carry precomputed latents")
        ae = load_autoencoder(self.autoencoder)
        if ae.latent_channels() != self.model.latent_channels:
            raise ValueError(f"model.latent_channels={self.model.latent_channels} does not match the learned "
                             f"autoencoder {self.autoencoder!r} ({ae.latent_channels()} channels)")
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
        """Builds the config from a nested mapping; ``model.name`` picks a base model config to override.

        Unknown keys raise ValueError naming them (absl's lock_config catches them earlier on the command line)."""
        d = dict(d)
        model = dict(d.pop("model", {}))
        base = get_model_config(model.pop("name")) if "name" in model else ModelConfig()
        if "text" in model:
            model["text"] = _build(TextEncoderConfig, dict(model["text"]), "model.text")
        for key in ("patch", "window"):
            if key in model:
                model[key] = tuple(model[key])
        kw = {"model": _replace(base, model, "model")}
        if "optim" in d:
            kw["optim"] = _build(OptimConfig, dict(d.pop("optim")), "optim")
        if "data" in d:
            kw["data"] = _build(DataConfig, dict(d.pop("data")), "data")
        if "mesh" in d:
            mesh = d.pop("mesh")
            kw["mesh"] = MeshConfig(tuple((k, int(v)) for k, v in dict(mesh).items())) if mesh else MeshConfig()
        if "schedule" in d:
            kw["schedule"] = _build(NoiseSchedule, dict(d.pop("schedule")), "schedule")
        if d.get("distill") is not None:
            kw["distill"] = _build(DistillConfig, dict(d.pop("distill")), "distill")
        for key in ("chunk_sizes", "chunk_probs"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        kw.update(d)
        return _build(cls, kw, "config")


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
