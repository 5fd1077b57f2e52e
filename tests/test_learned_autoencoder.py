"""The learned frame autoencoder: its interface, atomic save/load, the CLI, and a DiT trained on its latents whose
checkpoint carries its own copy (train -> export -> stream with the original autoencoder deleted)."""
import os
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import subprocess_env

from streamdit_jax import shapes_world as shapes
from streamdit_jax.pixels import frames_to_float
from streamdit_jax.models import get_model_config
from streamdit_jax.models import learned_autoencoder as lae
from streamdit_jax.configs import DataConfig, OptimConfig, TrainConfig
from streamdit_jax.training.input import train_data_iterator
from streamdit_jax.training.loop import ConfigMismatchError, train
from streamdit_jax.training.export import export_for_inference
from streamdit_jax.restore import CheckpointError, load_for_inference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_AE = lae.ConvAutoencoderConfig(latent_channels=4, widths=(8, 16), space_to_depth=2)  # factor 4


def saved_tiny_autoencoder(path, seed=0) -> str:
    frames = shapes.render(seed, 16, shapes.ShapesWorldConfig(frame_size=16)).frames
    model = lae.new_autoencoder(TINY_AE, seed)
    shift, scale = lae.latent_statistics(jax.jit(lambda x: model.encode(frames_to_float(x))), [frames])
    lae.save_autoencoder(str(path), model, shift, scale, {"note": "untrained, for tests"})
    return str(path)


def test_save_load_round_trip_gives_identical_encodings_and_standardised_latents(tmp_path):
    path = saved_tiny_autoencoder(tmp_path / "ae")
    ae = lae.load_autoencoder(path)
    assert ae.factor == 4 and ae.latent_shape((5, 16, 16, 3)) == (5, 4, 4, 4) and ae.info["note"] == "untrained, for tests"
    frames = frames_to_float(shapes.render(0, 16, shapes.ShapesWorldConfig(frame_size=16)).frames)
    z = np.asarray(ae.encode(ae.params, frames))
    assert z.shape == (16, 4, 4, 4)
    # the statistics were measured on exactly these frames: standardised latents have mean 0, std 1 per channel
    np.testing.assert_allclose(z.reshape(-1, 4).mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.reshape(-1, 4).std(0), 1.0, atol=1e-3)
    fresh = lae.new_autoencoder(TINY_AE, 0)
    raw = np.asarray(fresh.encode(frames))
    np.testing.assert_allclose(z * ae.scale + ae.shift, raw, rtol=1e-4, atol=1e-5)
    y = np.asarray(ae.decode(ae.params, jnp.asarray(z)))
    assert y.shape == frames.shape and y.min() >= -1.0 and y.max() <= 1.0
    with pytest.raises(ValueError, match="not divisible"):
        ae.latent_shape((1, 18, 18, 3))


def test_saving_over_an_autoencoder_replaces_it_whole_and_leaves_no_temporaries(tmp_path):
    path = saved_tiny_autoencoder(tmp_path / "ae", seed=0)
    first = lae.load_autoencoder.__wrapped__(path)
    saved_tiny_autoencoder(tmp_path / "ae", seed=1)
    second = lae.load_autoencoder.__wrapped__(path)
    a, b = jax.tree.leaves(first.params), jax.tree.leaves(second.params)
    assert any(not np.array_equal(x, y) for x, y in zip(a, b))
    assert sorted(os.listdir(tmp_path)) == ["ae"]
    with pytest.raises(ValueError, match="not a learned autoencoder directory"):
        lae.load_autoencoder(str(tmp_path))


def test_config_rejects_both_autoencoders_and_a_channel_mismatch(tmp_path):
    path = saved_tiny_autoencoder(tmp_path / "ae")
    with pytest.raises(ValueError, match="exclusive"):
        TrainConfig(autoencoder=path, autoencoder_factor=2, model=get_model_config("tiny", latent_channels=12))
    cfg = TrainConfig(autoencoder=path, autoencoder_factor=0, model=get_model_config("tiny", latent_channels=8))
    with pytest.raises(ValueError, match="latent_channels=8 does not match"):
        cfg.make_autoencoder()


def latent_config(ae_path, **kw):
    base = dict(model=get_model_config("tiny", latent_channels=4, window=(4, 0, 0)),
                optim=OptimConfig(learning_rate=1e-3, warmup_steps=1), autoencoder_factor=0, autoencoder=ae_path,
                data=DataConfig(frame_size=16, clip_len=12, num_clips=8, num_val_clips=2), buffer_len=8,
                chunk_sizes=(1, 2, 4, 8), batch_size=2, total_steps=2, log_every=1, checkpoint_every=2,
                sample_every=2, sample_steps=4, ema_decay=0.9)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_a_dit_on_learned_latents_trains_exports_and_streams_without_the_original_autoencoder(tmp_path):
    ae_path = saved_tiny_autoencoder(tmp_path / "ae")
    work = tmp_path / "run"
    train(latent_config(ae_path), str(work), train_data_iterator, show_progress=False)
    assert lae.is_autoencoder_dir(str(work / "autoencoder"))
    assert (work / "sample_0000002.gif").is_file()  # the preview decodes through the learned autoencoder
    export_for_inference(str(work), str(tmp_path / "export"))
    # fine-tuning from it needs its autoencoder: another one is refused naming both, a copy of it is accepted
    other = saved_tiny_autoencoder(tmp_path / "other_ae", seed=1)
    init = dict(init_from=str(tmp_path / "export"), total_steps=0)
    with pytest.raises(ConfigMismatchError, match=r"init_from checkpoint .* trained on the learned autoencoder "
                                                  r"[0-9a-f]{12}, this run's config uses the learned autoencoder"):
        train(latent_config(other, **init), str(tmp_path / "ft_other"), train_data_iterator, show_progress=False)
    shutil.copytree(ae_path, tmp_path / "ae_copy")
    state = train(latent_config(str(tmp_path / "ae_copy"), **init), str(tmp_path / "ft_copy"), train_data_iterator,
                  show_progress=False)
    assert int(state.step) == 0
    lae.load_autoencoder.cache_clear()
    shutil.rmtree(ae_path)
    cfg, _, _ = load_for_inference(str(tmp_path / "export"))
    assert cfg.autoencoder == str(tmp_path / "export" / "autoencoder")
    from streamdit_jax.sampling.pretrained import load_streamer
    _, streamer = load_streamer(str(tmp_path / "export"), steps_per_chunk=1)
    frames = np.concatenate(list(streamer.frames({0: "a red circle moving left"}, 6)))
    assert frames.shape == (6, 16, 16, 3) and frames.dtype == np.uint8
    # the export names its own copy, relative to itself: without it the export is incomplete, whatever else exists
    shutil.rmtree(tmp_path / "export" / "autoencoder")
    with pytest.raises(CheckpointError, match=r"export/autoencoder/autoencoder.json' is missing"):
        load_for_inference(str(tmp_path / "export"))
    os.remove(tmp_path / "export" / "integrity.json")  # no record to check against: the config's copy is not found
    with pytest.raises(CheckpointError, match="learned autoencoder .*export/autoencoder' not found"):
        load_for_inference(str(tmp_path / "export"))


@pytest.mark.slow
def test_train_autoencoder_cli_writes_a_loadable_autoencoder_with_its_reconstruction_scores(tmp_path):
    env = subprocess_env()
    out = tmp_path / "ae"
    r = subprocess.run([sys.executable, "-m", "experiments.train_autoencoder", f"--output={out}", "--steps=3",
                        "--batch_size=4", "--num_clips=2", "--num_eval_clips=1", "--frame_size=16",
                        "--widths=8,16", "--latent_channels=4"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ae = lae.load_autoencoder(str(out))
    assert ae.factor == 4
    assert set(ae.info["reconstruction"]) == {"present", "colour", "shape", "direction"}
    assert "reconstruction of held-out videos" in r.stdout


@pytest.mark.parametrize("args,message", [
    ({"steps": 0}, "--steps=0 must be an int >= 1"),
    ({"batch_size": -2}, "--batch_size=-2 must be an int >= 1"),
    ({"loss": "huber"}, "--loss='huber' is invalid: valid is one of 'palette', 'l1', 'mse'"),
])
def test_autoencoder_training_refuses_bad_arguments_before_any_work(args, message):
    from streamdit_jax.training import autoencoder_training
    with pytest.raises(ValueError, match=re.escape(message)):
        autoencoder_training.check_training_args("--", **args)
    with pytest.raises(ValueError, match=re.escape(message[2:])):  # the library entry checks them first
        autoencoder_training.train_autoencoder(TINY_AE, shapes.ShapesWorldConfig(frame_size=16),
                                               **{"steps": 1, "num_clips": 1, **args}, progress=False)
