"""Precomputed latents (data.latent_source="precomputed"): the latents of every whole clip, written once in parts
beside the frames dataset, read as one source; training windows cut out of them match the frames' windows encoded
in the step; the step then gets no autoencoder weights. The patch autoencoder on a tiny shapes world (exact and
instant); the causal Wan VAE end to end is in test_real_video.py."""
import dataclasses

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from streamdit_jax.configs import DataConfig, TrainConfig
from streamdit_jax.data import latent_clips, pipeline
from streamdit_jax.models.autoencoder import PatchAutoencoder
from streamdit_jax.models.text import tokenize_bytes
from streamdit_jax.pixels import frames_to_float
from streamdit_jax.training import input as train_input
from streamdit_jax.training import latent_input, steps


def tiny_config(**data) -> TrainConfig:
    from experiments.configs import shapes_tiny
    cfg = TrainConfig.from_dict(shapes_tiny.get_config().to_dict())
    d = dict(frame_size=16, clip_len=12, num_clips=5, num_val_clips=1, latent_source="precomputed")
    return dataclasses.replace(cfg, batch_size=2, data=dataclasses.replace(cfg.data, **{**d, **data}))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A workdir whose latents were written in 2 parts (part 0 builds the frames dataset)."""
    workdir = str(tmp_path_factory.mktemp("latents"))
    cfg = tiny_config()
    with pytest.raises(ValueError, match=r"not complete in .*latent_clips: write them first with `python -m "
                                         r"experiments.precompute_latents"):
        train_input.check_training_inputs(cfg, workdir)
    with pytest.raises(ValueError, match="run part 0 first"):
        latent_input.precompute_latents(cfg, workdir, part=1, num_parts=2, show_progress=False)
    builder, wrote = latent_input.precompute_latents(cfg, workdir, part=0, num_parts=2, show_progress=False)
    assert wrote and builder.builder_config.name.endswith("__part0of2")
    with pytest.raises(ValueError, match=r"found only parts \[0\] of 2"):
        latent_input.prepared_parts(cfg, workdir)
    assert latent_input.precompute_latents(cfg, workdir, part=1, num_parts=2, show_progress=False)[1]
    assert not latent_input.precompute_latents(cfg, workdir, part=1, num_parts=2, show_progress=False)[1]
    return cfg, workdir


def test_latents_written_in_parts_read_back_as_every_clip_encoded_whole_in_order(written):
    cfg, workdir = written
    train_input.check_training_inputs(cfg, workdir)  # complete now
    frames, _ = train_input.prepare_dataset(cfg, workdir)
    frames = frames.as_data_source("train")
    source = latent_input.latent_training_source(cfg, workdir)
    assert len(source) == len(frames) == 5
    ae = PatchAutoencoder(2)
    for i in range(5):
        record, clip = source[i], frames[i]
        assert int(record["id"]) == int(clip["id"])
        want = np.asarray(ae.encode({}, frames_to_float(np.asarray(clip["frames"])))).astype(np.float16)
        np.testing.assert_array_equal(record["latents"], want)
        np.testing.assert_array_equal(record["frame_index"], np.arange(12))
        assert record["captions"] == clip["captions"]
    # one process's slice of two: contiguous, the whole together
    parts = [tfds.builder_from_directory(d) for d in latent_input.prepared_parts(cfg, workdir)]
    halves = [latent_clips.as_training_source(parts, p, 2) for p in (0, 1)]
    assert [int(r["id"]) for h in halves for r in h[:]] == [int(source[i]["id"]) for i in range(5)]


def test_training_windows_of_latents_are_the_frames_windows_encoded_and_the_step_gets_no_autoencoder(written):
    cfg, workdir = written
    frames, _ = train_input.prepare_dataset(cfg, workdir)
    tokenize = lambda prompts: tokenize_bytes(prompts, cfg.model.text.max_len)
    kw = dict(window_len=8, batch_size=2, seed=3, tokenize=tokenize, with_provenance=True, read_threads=1)
    from_frames = iter(pipeline.make_train_dataset(frames.as_data_source("train"), **kw))
    from_latents = iter(train_input.train_data_iterator(cfg, workdir))
    ours = iter(pipeline.make_train_dataset(latent_input.latent_training_source(cfg, workdir), **kw))
    for _ in range(3):
        a, b = next(from_frames), next(ours)
        np.testing.assert_array_equal(a["id"], b["id"])
        np.testing.assert_array_equal(a["start"], b["start"])
        np.testing.assert_array_equal(a["tokens"], b["tokens"])
        np.testing.assert_array_equal(a["steady"], b["steady"])
        want = np.asarray(PatchAutoencoder(2).encode({}, frames_to_float(a["frames"]))).astype(np.float16)
        np.testing.assert_array_equal(b["latents"], want)
        assert "frames" not in b
    batch = next(from_latents)
    assert set(batch) == {"latents", "tokens", "steady"} and batch["latents"].shape == (2, 8, 8, 8, 12)
    mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1],
                         axis_types=(jax.sharding.AxisType.Auto,))
    frozen = steps.replicated_frozen_params(cfg, mesh)
    assert frozen["autoencoder"] is None
    on_the_fly = steps.replicated_frozen_params(dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, latent_source="on_the_fly")), mesh)
    assert on_the_fly["autoencoder"] == {}  # the patch autoencoder has no weights, but it is passed


def test_latent_frame_index_is_the_last_video_frame_of_each_latent_frame_and_bad_lengths_are_named():
    np.testing.assert_array_equal(latent_clips.latent_frame_index(9, 3, 4), [0, 4, 8])
    np.testing.assert_array_equal(latent_clips.latent_frame_index(6, 6, 1), np.arange(6))
    with pytest.raises(ValueError, match=r"needs 1 \+ 4 k frames per clip \(data.clip_len, e.g. 9\)"):
        latent_clips.latent_frame_index(10, 3, 4)
    with pytest.raises(ValueError, match="part=2 of num_parts=2"):
        latent_clips.part_range(10, 2, 2)
    with pytest.raises(ValueError, match="needs the autoencoder that writes the latents"):
        dataclasses.replace(tiny_config(), autoencoder_factor=0)
    with pytest.raises(ValueError, match=r"data.latent_source='precomputd' is invalid"):
        DataConfig(latent_source="precomputd")
    assert [list(latent_clips.part_range(10, p, 3)) for p in range(3)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
