"""Configs: every TrainConfig field is a --config key of every config file (generated ConfigDicts), the config files
give exactly the TrainConfigs they gave before they were generated, every value is validated when the dataclass is
built (ValueError naming the field and the bad value), and the train CLI turns bad input into one line + exit 2."""
import dataclasses
import functools
import json
import math
import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from helpers import subprocess_env

from experiments import config_dicts
from streamdit_jax.data import tfds_builders
from streamdit_jax.models.config import ModelConfig, TextEncoderConfig, get_model_config
from streamdit_jax.parallel import MeshConfig
from streamdit_jax.partition import NoiseSchedule
from streamdit_jax.configs import (DATASET_NAMES, DEFAULT_MODEL, DataConfig, DistillConfig, OptimConfig,
                                           TrainConfig)
from streamdit_jax.training.input import check_training_inputs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "experiments", "configs")
# config_flags loads config files with importlib's deprecated load_module (ml_collections 1.1)
pytestmark = pytest.mark.filterwarnings(r"ignore:the load_module\(\) method is deprecated:DeprecationWarning")

# ------------------------------------------------------------------------------------ the config files, pinned

# TrainConfig() as of the change that generated the config files (flattened JSON of to_dict(); mesh separately). A
# literal, so that a change of TrainConfig's defaults, which every generated config starts from, shows up below.
BASE = {
    'model.latent_channels': 12, 'model.patch': [1, 2, 2], 'model.width': 64, 'model.depth': 2, 'model.num_heads': 4,
    'model.mlp_ratio': 4.0, 'model.window': [0, 0, 0], 'model.time_freq_dim': 256, 'model.rope_theta': 10000.0,
    'model.text.kind': 'byte', 'model.text.path': '', 'model.text.width': 64, 'model.text.depth': 2, 'model.text.num_heads': 2, 'model.text.max_len': 64,
    'model.dtype': 'float32', 'model.param_dtype': 'float32', 'model.remat': False, 'model.attention_impl': None,
    'model.pooled_text': False, 'model.arch': 'streamdit', 'model.ffn_dim': 0, 'model.attend_text_padding': False,
    'optim.learning_rate': 0.0003, 'optim.warmup_steps': 100, 'optim.end_lr_factor': 0.1, 'optim.weight_decay': 0.01,
    'optim.b1': 0.9, 'optim.b2': 0.99, 'optim.grad_clip': 1.0,
    'data.name': 'shapes_world', 'data.data_dir': '', 'data.video_dir': '', 'data.frame_size': 32, 'data.frame_width': 0,
    'data.clip_len': 64,
    'data.num_clips': 512, 'data.num_val_clips': 16, 'data.two_object_prob': 0.0, 'data.mean_switch_interval': 48.0,
    'data.switch_weights': [1.0, 1.0, 1.0], 'data.caption_wording': 'canonical', 'data.canonical_caption_prob': 0.25,
    'data.text_source': 'on_the_fly', 'data.latent_source': 'on_the_fly', 'data.seed': 0,
    'buffer_len': 16, 'reference_frames': 0, 'chunk_sizes': [1, 2, 4, 8, 16], 'chunk_probs': None,
    't2v_steady_windows': False, 'schedule.kind': 'linear', 'schedule.param': 1.0, 'text_dropout': 0.1,
    'ema_decay': 0.999, 'ema_warmup': True, 'autoencoder_factor': 2, 'autoencoder': '', 'batch_size': 8,
    'total_steps': 1000, 'seed': 0, 'log_every': 10, 'checkpoint_every': 200, 'keep_checkpoints': 3,
    'async_checkpoint': True, 'sample_every': 500, 'sample_steps': 16, 'distill': None, 'init_from': '',
    'init_fresh': [],
}
# ConfigDict sorts its keys, so the config files always gave the mesh axes in this order
MESH = (("context", 1), ("data", -1), ("fsdp", 1), ("tensor", 1))
_SMALL = {'model.width': 256, 'model.depth': 4, 'model.time_freq_dim': 64, 'model.text.width': 128,
          'model.text.max_len': 48, 'model.pooled_text': True, 'data.num_clips': 1024, 'ema_decay': 0.998,
          'log_every': 50, 'checkpoint_every': 250, 'sample_every': 1000}
_LATENT = {**_SMALL, 'model.latent_channels': 8, 'optim.learning_rate': 0.001, 'optim.warmup_steps': 200,
           'schedule.kind': 'shift', 'schedule.param': 1.5, 'autoencoder_factor': 0,
           'autoencoder': '{REPO}/experiments/checkpoints/shapes_ae', 'batch_size': 16, 'total_steps': 4500}
_ABLATION = {**_SMALL, 'model.latent_channels': 48, 'optim.warmup_steps': 20, 'schedule.kind': 'shift',
             'schedule.param': 3.0, 'ema_decay': 0.99, 'autoencoder_factor': 4, 'total_steps': 300, 'seed': 3,
             'checkpoint_every': 100, 'sample_every': 0, 'init_from': '{REPO}/experiments/checkpoints/shapes_small'}
# the MiniLM-conditioned recipe (written after the files were generated): the turns world, reworded captions
_MINILM = {**_LATENT, 'data.mean_switch_interval': 16.0, 'data.switch_weights': [1.0, 1.0, 2.0],
           'model.text.kind': 'minilm', 'model.text.width': 384, 'model.text.max_len': 40,
           'data.caption_wording': 'varied'}
# Each config file's TrainConfig before the files were generated from the dataclasses, as its differences from BASE
# (captured from the hand-written files at the previous commit; the bundled checkpoints were trained with these).
EXPECTED = {
    'shapes_tiny': {
        'model.width': 48, 'model.window': [4, 2, 2], 'model.time_freq_dim': 32, 'model.text.width': 32,
        'model.text.depth': 1, 'model.text.max_len': 48, 'optim.learning_rate': 0.001, 'optim.warmup_steps': 10,
        'data.frame_size': 16, 'data.clip_len': 24, 'data.num_clips': 64, 'data.num_val_clips': 4, 'buffer_len': 8,
        'chunk_sizes': [1, 2, 4, 8], 'ema_decay': 0.99, 'total_steps': 100, 'log_every': 5, 'checkpoint_every': 25,
        'sample_every': 50, 'sample_steps': 8},
    'shapes_base': {
        'model.width': 256, 'model.depth': 8, 'model.window': [8, 8, 8], 'model.time_freq_dim': 128,
        'model.text.width': 128, 'optim.learning_rate': 0.0005, 'optim.warmup_steps': 200, 'total_steps': 3000},
    'shapes_small': {
        **_SMALL, 'model.latent_channels': 48, 'optim.learning_rate': 0.001, 'optim.warmup_steps': 200,
        'schedule.kind': 'shift', 'schedule.param': 3.0, 'autoencoder_factor': 4, 'total_steps': 2100},
    'shapes_latent': _LATENT,
    'shapes_latent_turns': {**_LATENT, 'data.mean_switch_interval': 16.0, 'data.switch_weights': [1.0, 1.0, 2.0]},
    'shapes_latent_steady_t2v': {
        **_LATENT, 'data.mean_switch_interval': 16.0, 'data.switch_weights': [1.0, 1.0, 2.0],
        'optim.learning_rate': 0.0003, 'optim.warmup_steps': 50, 'chunk_probs': [0.05, 0.1, 0.05, 0.1, 0.7],
        't2v_steady_windows': True, 'total_steps': 850, 'checkpoint_every': 150},
    'shapes_minilm': _MINILM,
    'shapes_minilm_finetune': {**_MINILM, 'init_fresh': [r'denoiser\.blocks\.(plain|shifted)\.cross\.(k|v)\.kernel',
                                                         r'denoiser\.text_pool\.kernel'],
                               'optim.learning_rate': 0.0005, 'optim.warmup_steps': 100, 'total_steps': 1500},
    'shapes_minilm_steady_t2v': {
        **_MINILM, 'optim.learning_rate': 0.0003, 'optim.warmup_steps': 50,
        'chunk_probs': [0.05, 0.1, 0.05, 0.1, 0.7], 't2v_steady_windows': True, 'total_steps': 850,
        'checkpoint_every': 150},
    'chunk_ablation': _ABLATION,
    'chunk_ablation:1': {**_ABLATION, 'chunk_sizes': [1]},
    'chunk_ablation:4,8,16': {**_ABLATION, 'chunk_sizes': [4, 8, 16]},
}
# StreamDiT's recipe on Wan2.1 (written after the files were generated): the paths a user passes on the command line
_WAN_PATHS = ("--config.autoencoder=/vae", "--config.model.text.path=/umt5", "--config.data.video_dir=/videos")
_WAN = {'model.text.kind': 't5', 'model.text.path': '/umt5', 'model.text.max_len': 512, 'model.arch': 'wan',
        'model.attend_text_padding': True, 'optim.weight_decay': 0.0, 'data.name': 'video_folder',
        'data.video_dir': '/videos', 'data.text_source': 'precomputed', 'data.latent_source': 'precomputed',
        'schedule.kind': 'shift', 'schedule.param': 5.0, 'autoencoder_factor': 0, 'autoencoder': '/vae',
        'sample_every': 0}
_WAN_FULL = {**_WAN, 'model.latent_channels': 16, 'model.text.width': 4096, 'model.dtype': 'bfloat16',
             'model.remat': True, 'optim.learning_rate': 1e-05, 'optim.warmup_steps': 200, 'data.frame_size': 480,
             'data.frame_width': 832,
             'data.clip_len': 81, 'total_steps': 10000, 'log_every': 20, 'checkpoint_every': 500}
EXPECTED.update({
    'wan_streamdit': {**_WAN_FULL, 'model.width': 1536, 'model.depth': 30, 'model.num_heads': 12,
                      'model.ffn_dim': 8960, 'batch_size': 64},
    'wan_streamdit:14b': {**_WAN_FULL, 'model.width': 5120, 'model.depth': 40, 'model.num_heads': 40,
                          'model.ffn_dim': 13824, 'batch_size': 256},
    'wan_streamdit:tiny': {
        **_WAN, 'model.latent_channels': 4, 'model.width': 32, 'model.num_heads': 2, 'model.time_freq_dim': 32,
        'model.text.width': 32, 'model.text.depth': 1, 'model.ffn_dim': 64, 'optim.learning_rate': 0.001,
        'optim.warmup_steps': 2, 'data.frame_width': 48, 'data.clip_len': 17, 'buffer_len': 4, 'chunk_sizes': [1, 2, 4], 'ema_decay': 0.9,
        'batch_size': 2, 'total_steps': 20, 'log_every': 5, 'checkpoint_every': 20},
})
OVERRIDES = {name: _WAN_PATHS for name in EXPECTED if name.startswith("wan_streamdit")}
_WAN_MESH = (("context", 1), ("data", 1), ("fsdp", -1), ("tensor", 1))
MESHES = {"wan_streamdit": _WAN_MESH, "wan_streamdit:tiny": _WAN_MESH,
          "wan_streamdit:14b": (("context", 4), ("data", 1), ("fsdp", -1), ("tensor", 1))}
# distill_shapes.py before it was generated: the overlay student_config merges on the teacher's config
DISTILL_BEFORE = {
    'batch_size': 4, 'checkpoint_every': 50, 'data': {'num_clips': 256, 'seed': 1},
    'distill': {'chunk': 2, 'guidance': 3.0, 'reference_frames': 0, 'steps_per_chunk': 16}, 'ema_decay': 0.99,
    'ema_warmup': True, 'log_every': 10, 'optim': {'b1': 0.9, 'b2': 0.99, 'end_lr_factor': 0.1, 'grad_clip': 1.0,
                                                    'learning_rate': 0.0001, 'warmup_steps': 20, 'weight_decay': 0.0},
    'sample_every': 0, 'seed': 1, 'total_steps': 300}


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "mesh":
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def load(name, *overrides, flag_values=None):
    """The config file ``name`` (``file:arg`` allowed) through config_flags as the entry points load it, with
    command-line ``overrides``: (TrainConfig.from_dict of the ConfigDict, the ConfigDict)."""
    argv = ["prog", f"--config={os.path.join(CONFIGS, name.split(':')[0])}.py"
                    + (f":{name.split(':')[1]}" if ":" in name else ""), *overrides]
    fv = flags.FlagValues() if flag_values is None else flag_values
    config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True, sys_argv=argv)
    fv(argv)
    return fv.config


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_config_file_gives_exactly_the_train_config_it_gave_before_it_was_generated(name):
    config = load(name, *OVERRIDES.get(name, ()))
    cfg = TrainConfig.from_dict(config.to_dict())
    got = flat(json.loads(json.dumps(cfg.to_dict())))
    mesh = got.pop("mesh")
    expected = {k: (v.replace("{REPO}", REPO) if isinstance(v, str) else v)
                for k, v in {**BASE, **EXPECTED[name]}.items()}
    assert {k: v for k, v in got.items() if expected.get(k) != v} == {}
    assert set(got) == set(expected)
    axes = MESHES.get(name, MESH)
    assert cfg.mesh.axes == axes and list(mesh) == [a for a, _ in axes]


def test_every_config_file_is_pinned_and_holds_every_train_config_field():
    files = sorted(f[:-3] for f in os.listdir(CONFIGS) if f.endswith(".py") and f != "__init__.py")
    assert set(files) == {n.split(":")[0] for n in EXPECTED} | set(DISTILL_FILES)
    with_distill = TrainConfig(distill=DistillConfig(teacher="/t"))  # a training config's distill: every field
    fields = set(flat(json.loads(json.dumps(with_distill.to_dict()))))
    for name in files:
        if name in DISTILL_FILES:
            continue
        keys = set(flat(load(name).to_dict())) - {"model.name"}
        assert keys == fields, (name, keys ^ fields)


@pytest.mark.parametrize("teacher", ["shapes_small", "shapes_latent"])
def test_distill_shapes_gives_the_student_config_it_gave_before_plus_a_size_1_context_axis(teacher):
    from streamdit_jax.training.distill_config import student_config
    teacher = os.path.join(REPO, "experiments", "checkpoints", teacher)
    before = student_config(teacher, DISTILL_BEFORE)
    overlay = load("distill_shapes").to_dict()
    assert flat(overlay).items() >= flat(DISTILL_BEFORE).items()  # it only gained keys, with values...
    after = student_config(teacher, overlay)
    # ...that equal the bundled teachers' own, but for the mesh, which now names the (size 1) context axis too
    assert dataclasses.replace(after, mesh=before.mesh) == before
    assert dict(after.mesh.axes) == {**dict(before.mesh.axes), "context": 1}


DISTILL_FILES = ("distill_shapes", "distill_wan")


@pytest.mark.parametrize("name", ["distill_shapes", "distill_wan", "distill_wan:tiny", "distill_wan:14b"])
def test_distill_configs_hold_only_what_a_distillation_chooses_and_every_such_key_overrides(name):
    overlay = load(name, "--config.distill.chunk=4", "--config.mesh.fsdp=-1", "--config.mesh.data=1",
                   "--config.optim.b2=0.95", "--config.data.num_clips=8").to_dict()
    assert set(overlay) == ({"distill", "optim", "data", "mesh"} | set(config_dicts.DISTILL_KEYS))
    assert set(overlay["distill"]) == {"chunk", "steps_per_chunk", "reference_frames", "guidance"}  # teacher: a flag
    context = 4 if name.endswith("14b") else 1
    assert overlay["distill"]["chunk"] == 4 and overlay["mesh"] == {"context": context, "data": 1, "fsdp": -1,
                                                                    "tensor": 1}
    assert overlay["optim"]["b2"] == 0.95 and overlay["data"]["num_clips"] == 8
    with pytest.raises(AttributeError):  # the teacher's: refused as unknown (exit 2 with parse_flags)
        load(name, "--config.buffer_len=8")


@pytest.mark.parametrize("name", ["wan_streamdit:2b", "distill_wan:7b"])
def test_wan_config_files_refuse_an_unknown_variant_naming_the_valid_ones(name):
    with pytest.raises(flags.IllegalFlagValueError, match=r"argument '\w+' is unknown; valid: \('1.3b', '14b', 'tiny'\)"):
        load(name)


# ------------------------------------------------------------------------------------- generated ConfigDicts

def test_overrides_reach_model_fields_and_model_name_still_picks_the_base():
    cfg = TrainConfig.from_dict(load("shapes_tiny", "--config.model.depth=4").to_dict())
    assert cfg.model == get_model_config("tiny", latent_channels=12, window=(4, 2, 2), depth=4)
    cfg = TrainConfig.from_dict(load("shapes_tiny", "--config.model.name=small", "--config.model.text.max_len=32",
                                     "--config.model.attention_impl=xla").to_dict())
    assert cfg.model == get_model_config("small", latent_channels=12, window=(4, 2, 2), attention_impl="xla",
                                         text=dataclasses.replace(get_model_config("small").text, max_len=32))
    # a released model's name is an alias of its preset
    cfg = TrainConfig.from_dict(load("wan_streamdit", *_WAN_PATHS, "--config.model.name=wan2.1_14b").to_dict())
    assert cfg.model.width == get_model_config("wan_14b").width and cfg.model.text.path == "/umt5"
    cfg = TrainConfig.from_dict(load("shapes_tiny", "--config.chunk_probs=(0.1,0.2,0.3,0.4)",
                                     "--config.schedule.kind=power", "--config.mesh.fsdp=-1",
                                     "--config.mesh.data=1").to_dict())
    assert cfg.chunk_probs == (0.1, 0.2, 0.3, 0.4) and cfg.schedule == NoiseSchedule("power", 1.0)
    assert dict(cfg.mesh.axes) == {"context": 1, "data": 1, "fsdp": -1, "tensor": 1}
    # distill stays off in a training config unless one of its keys is set (the others take their defaults)
    assert TrainConfig.from_dict(load("shapes_tiny").to_dict()).distill is None
    config = load("shapes_tiny", "--config.distill.teacher=/t", "--config.distill.chunk=4")
    cfg = TrainConfig.from_dict(config.to_dict())
    assert cfg.distill == DistillConfig(teacher="/t", chunk=4)


@pytest.mark.parametrize("cfg,model_name", [
    (TrainConfig(), None),
    (TrainConfig(model=get_model_config("tiny", latent_channels=12, window=(0, 2, 2), remat=True,
                                        text=TextEncoderConfig(width=32, depth=3, num_heads=4, max_len=16)),
                 buffer_len=9, reference_frames=1, chunk_sizes=(1, 8), chunk_probs=(0.25, 0.75),
                 data=DataConfig(frame_size=16, clip_len=16, switch_weights=(1.0, 2.0, 3.0)),
                 distill=DistillConfig(teacher="/t", chunk=8, reference_frames=1),
                 mesh=MeshConfig((("fsdp", -1), ("data", 2)))), "tiny"),
    (TrainConfig(model=get_model_config("small", latent_channels=12), schedule=NoiseSchedule("shift", 2.0)), "small"),
])
def test_config_dict_turns_back_into_its_train_config(cfg, model_name):
    d = config_dicts.config_dict(cfg, model_name=model_name).to_dict()
    back = TrainConfig.from_dict(json.loads(json.dumps(d)))
    assert dataclasses.replace(back, mesh=cfg.mesh) == cfg and dict(back.mesh.axes) == dict(cfg.mesh.axes)
    assert d["model"]["name"] == model_name


def test_default_train_config_builds_and_equals_the_empty_dict():
    assert TrainConfig().model == DEFAULT_MODEL
    assert DEFAULT_MODEL.latent_channels == 3 * TrainConfig().autoencoder_factor ** 2
    assert TrainConfig.from_dict({}) == TrainConfig()


def test_dataset_names_are_the_builders():
    assert sorted(DATASET_NAMES) == sorted(tfds_builders.BUILDERS)


# ------------------------------------------------------------------------------------- validation

BIG = 10 ** 9


@functools.cache
def tiny() -> dict:
    return load("shapes_tiny").to_dict()


def merged(override):
    """shapes_tiny's dict with ``override`` (sub-dicts merged key by key)."""
    base = tiny()
    return {**base, **{k: ({**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v)
                       for k, v in override.items()}}


@pytest.mark.parametrize("override,needle", [
    ({"buffer_len": 0}, "buffer_len=0 must be >= 1"),
    ({"buffer_len": -8}, "buffer_len=-8 must be >= 1"),
    ({"reference_frames": -1}, r"reference_frames=-1 must be in \[0, 7\]"),
    ({"reference_frames": 8}, r"reference_frames=8 must be in \[0, 7\]"),
    ({"chunk_probs": (float("nan"),) * 4}, r"chunk_probs=\(nan, nan, nan, nan\) must be finite"),
    ({"text_dropout": 1.0}, r"text_dropout=1.0 must be in \[0, 1\)"),
    ({"ema_decay": float("nan")}, r"ema_decay=nan must be in \[0, 1\)"),
    ({"ema_warmup": "yes"}, "ema_warmup='yes' must be True or False"),
    ({"autoencoder_factor": -1}, "autoencoder_factor=-1 must be >= 0"),
    ({"batch_size": 0}, "batch_size=0 must be >= 1"),
    ({"total_steps": -1}, "total_steps=-1 must be >= 0"),
    ({"seed": -1}, "seed=-1 must be >= 0"),
    ({"log_every": 0}, "'log_every': 0"),
    ({"sample_every": -1}, "'sample_every': -1"),
    ({"data": {"frame_size": 0}}, "data.frame_size=0 must be >= 12"),
    ({"data": {"frame_size": 8}}, "data.frame_size=8 must be >= 12"),
    ({"data": {"frame_size": 10 ** 5}}, "data.frame_size=100000, data.frame_width=0: one 100000x100000x3 frame is"),
    ({"data": {"frame_width": -1}}, "data.frame_width=-1 must be >= 0"),
    ({"data": {"frame_width": 48}}, "data.frame_width=48: the shapes world renders square frames"),
    ({"data": {"num_clips": -5}}, "data.num_clips=-5 must be >= 1"),
    ({"data": {"num_clips": 0}}, "data.num_clips=0 must be >= 1"),
    ({"data": {"num_val_clips": -1}}, "data.num_val_clips=-1 must be >= 0"),
    ({"data": {"clip_len": 0}}, "data.clip_len=0 must be >= 1"),
    ({"data": {"clip_len": BIG}}, "data.clip_len=1000000000 must be <= 349525 at 16x16 frames.*256 MiB"),
    ({"data": {"clip_len": 4}}, "data.clip_len=4 is shorter than buffer_len=8"),
    ({"data": {"two_object_prob": 1.5}}, r"data.two_object_prob=1.5 must be in \[0, 1\]"),
    ({"data": {"mean_switch_interval": 0.0}}, "data.mean_switch_interval=0.0 must be >= 1"),
    ({"data": {"mean_switch_interval": float("nan")}}, "data.mean_switch_interval=nan must be >= 1"),
    ({"data": {"switch_weights": (0.0, 0.0, 0.0)}}, r"data.switch_weights=\(0.0, 0.0, 0.0\) must be 3 finite"),
    ({"data": {"switch_weights": (1.0, -1.0, 1.0)}}, r"data.switch_weights=\(1.0, -1.0, 1.0\)"),
    ({"data": {"switch_weights": (1.0, 1.0)}}, r"data.switch_weights=\(1.0, 1.0\)"),
    ({"data": {"name": "imagenet"}}, "data.name='imagenet' is invalid: valid is one of 'shapes_world', 'video_folder'"),
    ({"data": {"seed": -3}}, "data.seed=-3 must be >= 0"),
    ({"optim": {"learning_rate": float("inf")}}, r"optim.learning_rate=inf must be > 0 \(a finite number"),
    ({"optim": {"learning_rate": float("nan")}}, "optim.learning_rate=nan must be > 0"),
    ({"optim": {"learning_rate": 0.0}}, "optim.learning_rate=0.0 must be > 0"),
    ({"optim": {"warmup_steps": -1}}, "optim.warmup_steps=-1 must be >= 0"),
    ({"optim": {"end_lr_factor": 2.0}}, r"optim.end_lr_factor=2.0 must be in \[0, 1\]"),
    ({"optim": {"weight_decay": -0.1}}, "optim.weight_decay=-0.1 must be >= 0"),
    ({"optim": {"b1": 1.0}}, r"optim.b1=1.0 must be in \[0, 1\)"),
    ({"optim": {"b2": float("inf")}}, r"optim.b2=inf must be in \[0, 1\)"),
    ({"optim": {"grad_clip": 0.0}}, "optim.grad_clip=0.0 must be > 0"),
    ({"mesh": {"data": 0}}, "mesh.data=0 must be an integer >= 1, or -1"),
    ({"mesh": {"data": -8}}, "mesh.data=-8 must be an integer >= 1, or -1"),
    ({"mesh": {"data": -1, "fsdp": -1}}, r"at most one axis may be -1 .* got -1 for \['data', 'fsdp'\]"),
    ({"mesh": {"pipeline": 2}}, r"mesh axes \['pipeline'\] are unknown; valid axes"),
    ({"model": {"depth": 3}}, "model.depth=3 must be an even number >= 2"),
    ({"model": {"depth": 0}}, "model.depth=0 must be an even number >= 2"),
    ({"model": {"width": 0}}, "model.width=0 must be >= 1"),
    ({"model": {"num_heads": 0}}, "model.num_heads=0 must be >= 1"),
    ({"model": {"num_heads": 5}}, "model.width=48 is not divisible by model.num_heads=5"),
    ({"model": {"latent_channels": 0}}, "model.latent_channels=0 must be >= 1"),
    ({"model": {"window": (4, 2)}}, r"model.window=\(4, 2\) must be 3 integers >= 0"),
    ({"model": {"patch": (1, 0, 2)}}, r"model.patch=\(1, 0, 2\) must be 3 integers >= 1"),
    ({"model": {"mlp_ratio": 0.0}}, "model.mlp_ratio=0.0 must be > 0"),
    ({"model": {"time_freq_dim": 31}}, "model.time_freq_dim=31 must be even"),
    ({"model": {"rope_theta": float("inf")}}, "model.rope_theta=inf must be > 0"),
    ({"model": {"dtype": "float16"}}, "model.dtype='float16' is invalid: valid is one of 'float32', 'bfloat16'"),
    ({"model": {"remat": "no"}}, "model.remat='no' must be True or False"),
    ({"model": {"name": "huge"}}, r"model.name='huge': model config 'huge' is unknown; valid: \['small', "
                                      r"'streamdit_4b', 'tiny', 'wan_14b', 'wan_1_3b', 'wan_tiny'\] \(aliases: "
                                      r"wan2.1_1.3b = wan_1_3b"),
    ({"model": {"text": {"num_heads": 0}}}, "model.text.num_heads=0 must be >= 1"),
    ({"model": {"text": {"max_len": 1}}}, "model.text.max_len=1 must be >= 2"),
    ({"model": {"text": {"kind": "umt5"}}}, "model.text.kind='umt5' is invalid: valid is one of 'byte', 'minilm'"),
    ({"schedule": {"kind": "cosine"}}, "schedule.kind='cosine' is unknown; valid kinds"),
    ({"schedule": {"kind": "shift", "param": 0.0}}, "schedule.param=0.0 must be > 0"),
    ({"schedule": {"param": float("nan")}}, "schedule.param=nan must be > 0"),
    ({"distill": {"teacher": "/t", "chunk": 0}}, "distill.chunk=0 must be >= 1"),
    ({"distill": {"teacher": "/t", "steps_per_chunk": 0}}, "distill.steps_per_chunk=0 must be >= 1"),
    ({"distill": {"teacher": "/t", "guidance": 0.5}}, "distill.guidance=0.5 must be >= 1"),
    ({"distill": {"teacher": "/t", "reference_frames": -1}}, "distill.reference_frames=-1 must be >= 0"),
])
def test_each_bad_value_is_refused_when_built_naming_the_field_and_the_value(override, needle):
    with pytest.raises(ValueError, match=needle):
        TrainConfig.from_dict(merged(override))


def test_a_student_distilled_with_other_reference_frames_than_it_streams_with_is_refused_naming_both():
    with pytest.raises(ValueError, match="distill.reference_frames=1 differs from reference_frames=0"):
        TrainConfig.from_dict(merged({"distill": {"teacher": "/t", "chunk": 1, "reference_frames": 1}}))
    streams_k1 = {"reference_frames": 1, "chunk_sizes": (1, 7)}
    with pytest.raises(ValueError, match="distill.reference_frames=0 differs from reference_frames=1"):
        TrainConfig.from_dict(merged({**streams_k1, "distill": {"teacher": "/t", "chunk": 7}}))
    cfg = TrainConfig.from_dict(merged({**streams_k1, "distill": {"teacher": "/t", "chunk": 7, "reference_frames": 1}}))
    assert cfg.distill_partition().K == 1


def test_the_config_dataclasses_validate_when_built_directly_too():
    with pytest.raises(ValueError, match="optim.learning_rate=inf"):
        OptimConfig(learning_rate=math.inf)
    with pytest.raises(ValueError, match="data.num_clips=-5"):
        DataConfig(num_clips=-5)
    with pytest.raises(ValueError, match="mesh.tensor=0"):
        MeshConfig((("data", -1), ("tensor", 0)))
    with pytest.raises(ValueError, match="model.depth=1"):
        ModelConfig(depth=1)
    with pytest.raises(ValueError, match="distill.guidance=nan"):
        DistillConfig(guidance=math.nan)
    assert DataConfig(name="video_folder", frame_size=4).frame_size == 4  # the 12-pixel floor is the shapes world's
    assert MeshConfig([["data", 2]]).axes == (("data", 2),) and TrainConfig(chunk_sizes=[1, 16]).chunk_sizes == (1, 16)


# ------------------------------------------------------------------------------------- dataset / workdir checks

def _video_folder(root, videos: dict, captions: dict | None):
    root.mkdir()
    for file, frames in videos.items():
        iio.imwrite(root / file, np.full((frames, 16, 16, 3), 120, np.uint8), fps=8, extension=".mp4")
    if captions is not None:
        (root / "captions.jsonl").write_text("".join(json.dumps({"file": f, "caption": c}) + "\n"
                                                     for f, c in captions.items()))
    return str(root)


def video_config(video_dir):
    return TrainConfig.from_dict(merged({"data": {"name": "video_folder", "video_dir": video_dir, "clip_len": 8}}))


def test_dataset_and_workdir_problems_are_named_before_anything_is_built(tmp_path):
    work = str(tmp_path / "work")
    with pytest.raises(ValueError, match="data.name='video_folder' needs data.video_dir"):
        check_training_inputs(video_config(""), work)
    with pytest.raises(ValueError, match="data.video_dir='/nonexistent/videos' does not exist"):
        check_training_inputs(video_config("/nonexistent/videos"), work)
    no_captions = _video_folder(tmp_path / "no_captions", {"a.mp4": 8}, None)
    with pytest.raises(ValueError, match="no_captions has no captions.jsonl"):
        check_training_inputs(video_config(no_captions), work)
    uncaptioned = _video_folder(tmp_path / "uncaptioned", {"a.mp4": 8}, {"other.mp4": "x"})
    with pytest.raises(ValueError, match=r"none of its 1 videos .* has a line in captions.jsonl"):
        check_training_inputs(video_config(uncaptioned), work)
    short = _video_folder(tmp_path / "short", {"a.mp4": 3, "b.mp4": 5}, {"a.mp4": "x", "b.mp4": "y"})
    with pytest.raises(ValueError, match=r"no usable clip .*clip_len=8.*'too_short': \['a.mp4', 'b.mp4'\]"):
        check_training_inputs(video_config(short), work)
    good = _video_folder(tmp_path / "good", {"a.mp4": 3, "b.mp4": 9}, {"a.mp4": "x", "b.mp4": "y"})
    check_training_inputs(video_config(good), work)
    assert not os.listdir(os.path.join(work, "data"))  # checked, nothing built
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="workdir '.*a_file/work' cannot be created"):
        check_training_inputs(video_config(good), str(blocker / "work"))
    with pytest.raises(ValueError, match="data.data_dir '.*a_file/data' cannot be created"):
        check_training_inputs(TrainConfig.from_dict(merged({"data": {"data_dir": str(blocker / "data")}})), work)


# ------------------------------------------------------------------------------------- the train CLI

def train_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "experiments.train", "--config=experiments/configs/shapes_tiny.py",
                           *args], cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)


def error_line(r):
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    return lines[0]


@pytest.mark.slow
def test_train_cli_unknown_keys_and_unparsable_values_exit_2_with_one_line(tmp_path):
    r = train_cli(f"--workdir={tmp_path}", "--config.foo=1")
    line = error_line(r)
    assert r.returncode == 2 and "unknown config key 'foo'" in line and "buffer_len, checkpoint_every" in line
    r = train_cli(f"--workdir={tmp_path}", "--config.model.dpth=4")
    line = error_line(r)
    assert r.returncode == 2 and "'model.dpth' (did you mean 'model.depth'?)" in line and "time_freq_dim" in line
    r = train_cli(f"--workdir={tmp_path}", "--config.model.depth=four")
    assert r.returncode == 2 and "--config.model.depth=four" in error_line(r)


@pytest.mark.slow
@pytest.mark.parametrize("args,needle", [
    (["--config.buffer_len=0"], "buffer_len=0 must be >= 1"),
    (["--config.optim.learning_rate=inf"], "optim.learning_rate=inf must be > 0"),
    (["--config.data.clip_len=1000000000"], "data.clip_len=1000000000 must be <= 349525"),
    (["--config.data.name=video_folder"], "needs data.video_dir"),
])
def test_train_cli_bad_values_and_datasets_exit_2_naming_them(tmp_path, args, needle):
    r = train_cli(f"--workdir={tmp_path}", *args)
    assert r.returncode == 2 and needle in error_line(r)
    assert not os.path.exists(tmp_path / "checkpoints")

