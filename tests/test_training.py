"""Train step: learning, sharding equivalence, checkpoints across meshes, config validation."""
import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import subprocess_env

from streamdit_jax import parallel
from streamdit_jax.checkpoint import Checkpointer
from streamdit_jax.models import get_model_config
from streamdit_jax.training import steps
from streamdit_jax.configs import DataConfig, OptimConfig, TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**kw):
    base = dict(model=get_model_config("tiny", latent_channels=12, window=(4, 2, 2)),
                optim=OptimConfig(learning_rate=3e-3, warmup_steps=1), data=DataConfig(frame_size=16, clip_len=16),
                buffer_len=8, chunk_sizes=(1, 2, 4, 8), batch_size=8, total_steps=20, text_dropout=0.1)
    base.update(kw)
    return TrainConfig(**base)


def fixed_batch(batch=8, seed=0):
    """Frames with structure (a bright square per example) and byte-level prompts."""
    rng = np.random.default_rng(seed)
    frames = np.full((batch, 8, 16, 16, 3), 20, np.uint8)
    for b in range(batch):
        x, y = rng.integers(0, 8, 2)
        for t in range(8):
            frames[b, t, y:y + 6, (x + t) % 10:(x + t) % 10 + 6] = (230, 40, 40) if b % 2 else (40, 40, 230)
    tokens = np.zeros((batch, 48), np.int32)
    tokens[:, 0] = 1
    tokens[:, 1:5] = rng.integers(2, 200, (batch, 4))
    return {"frames": frames, "tokens": tokens}


def one_device_mesh():
    return parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])


def mesh_222(third_axis="tensor"):
    return parallel.make_mesh(parallel.MeshConfig((("data", 2), ("fsdp", 2), (third_axis, 2))))


class Trainer:
    """One config's train state initialised once on ``mesh`` and its jitted step: ``run`` trains a fresh copy of the
    initial state (the step donates its input), so several runs share one initialisation and one compiled step."""

    def __init__(self, cfg, mesh):
        self.cfg, self.mesh = cfg, mesh
        self.graphdef, self.tx, state, self.shardings = steps.create_train_state(cfg, mesh)
        self.initial = jax.device_get(state)
        self._steps = {}

    def run(self, batch, n, keep_params_at=()):
        """(final state, per-step metrics, {step: host copy of the params after that many steps})."""
        bs = steps.batch_shardings(self.mesh, batch)
        key = tuple(sorted((k, v.shape) for k, v in batch.items()))
        if key not in self._steps:
            self._steps[key] = steps.make_train_step(self.cfg, self.graphdef, self.tx, self.shardings, bs)
        step = self._steps[key]
        state = jax.device_put(self.initial, self.shardings)
        metrics, kept = [], {}
        with parallel.activate(self.mesh):
            gbatch = jax.device_put(batch, bs)
            frozen = steps.replicated_frozen_params(self.cfg, self.mesh)
            for i in range(n):
                if i in keep_params_at:
                    kept[i] = jax.device_get(state.params)
                state, m = step(state, gbatch, frozen)
                metrics.append(jax.device_get(m))
        if n in keep_params_at:
            kept[n] = jax.device_get(state.params)
        return state, metrics, kept


def run_steps(cfg, mesh, batch, n):
    trainer = Trainer(cfg, mesh)
    state, metrics, _ = trainer.run(batch, n)
    return trainer.graphdef, state, metrics


@pytest.fixture(scope="module")
def one_device_run():
    """tiny_config() trained 20 steps on fixed_batch() on one device, once for the module: the learning test's run,
    and (its first 3 steps) the reference of the 2x2x2-mesh tests. Returns (graphdef, final state, metrics,
    {0: initial params, 3: params after 3 steps, 20: final params} on the host)."""
    trainer = Trainer(tiny_config(), one_device_mesh())
    state, metrics, kept = trainer.run(fixed_batch(), 20, keep_params_at=(0, 3, 20))
    return trainer.graphdef, state, metrics, kept


@pytest.fixture(scope="module")
def mesh_222_run():
    """third_axis -> run_steps(tiny_config(), mesh_222(third_axis), fixed_batch(), 3), each run once for the module
    (the equivalence tests and the checkpoint tests share them)."""
    return functools.cache(lambda third_axis: run_steps(tiny_config(), mesh_222(third_axis), fixed_batch(), 3))


def eval_loss(cfg, graphdef, params, batch, seed=123):
    ae = cfg.make_autoencoder()
    no_drop = cfg.__class__(**{**cfg.__dict__, "text_dropout": 0.0})

    @jax.jit  # one compiled program: op by op, the first call compiled every operation of the model separately
    def loss(params, frames, tokens):
        latents = steps.frames_to_latents(frames, ae, ae.params)
        return steps.buffered_fm_loss(params, graphdef, latents, {"tokens": tokens}, jax.random.PRNGKey(seed),
                                      no_drop)[0]

    return float(loss(params, jnp.asarray(batch["frames"]), jnp.asarray(batch["tokens"])))


def test_twenty_train_steps_on_a_fixed_batch_reduce_the_loss(one_device_run):
    cfg, batch = tiny_config(), fixed_batch()
    graphdef, state, metrics, params = one_device_run
    before = eval_loss(cfg, graphdef, params[0], batch)
    after = eval_loss(cfg, graphdef, params[20], batch)
    assert int(state.step) == 20 and all(m["finite"] == 1 for m in metrics)
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("third_axis", ["tensor", "context"])
def test_train_step_on_a_2x2x2_mesh_matches_one_device_with_sharded_parameters(third_axis, one_device_run,
                                                                               mesh_222_run):
    """data x fsdp x tensor, and data x fsdp x context (context parallelism: the frames of every buffer split).
    The one-device reference: the first 3 steps of the module's 20-step one-device run (same config and batch)."""
    _, _, metrics, params = one_device_run
    single, m1 = params[3], metrics[:3]
    _, sharded, m8 = mesh_222_run(third_axis)
    assert int(sharded.step) == 3 and len(m8) == 3
    np.testing.assert_allclose([m["loss"] for m in m8], [m["loss"] for m in m1], rtol=2e-4)
    for a, b in zip(jax.tree.leaves(sharded.params), jax.tree.leaves(single)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5, rtol=2e-3)
    tensor = "tensor" if third_axis == "tensor" else None
    fc1 = sharded.params["denoiser"]["blocks"]["plain"]["fc1"]["kernel"]
    assert fc1.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", tensor)
    assert fc1.addressable_shards[0].data.shape[1:] == (fc1.shape[1] // 2, fc1.shape[2] // (2 if tensor else 1))
    mu = sharded.opt_state[1][0].mu["denoiser"]["blocks"]["plain"]["fc1"]["kernel"]  # Adam moments sharded like the params
    assert mu.sharding.spec == fc1.sharding.spec


@pytest.mark.parametrize("target_mesh", ["one_device", "2x2"])
def test_a_checkpoint_saved_on_8_devices_restores_on_other_meshes(tmp_path, target_mesh, mesh_222_run):
    cfg = tiny_config()
    _, state, _ = mesh_222_run("tensor")  # 3 steps on data x fsdp x tensor (shared with the equivalence test)
    ck = Checkpointer(str(tmp_path), async_save=True)
    ck.save(3, state, cfg.to_dict(), {"position": 7})
    ck.wait()
    mesh = one_device_mesh() if target_mesh == "one_device" else parallel.make_mesh(
        parallel.MeshConfig((("fsdp", 2), ("tensor", 2))), jax.devices()[:4])
    _, _, target, _ = steps.abstract_train_state(cfg, mesh)
    restored, config, data_state = ck.restore(target)
    ck.close()
    assert data_state == {"position": 7} and TrainConfig.from_dict(config) == cfg
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert a.sharding.mesh.devices.size == mesh.devices.size
    fc1 = restored.params["denoiser"]["blocks"]["plain"]["fc1"]["kernel"]
    assert len(fc1.sharding.device_set) == mesh.devices.size


@pytest.mark.parametrize("name", sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "experiments", "configs"))
                                         if f.endswith(".py") and f != "__init__.py"))
def test_every_experiment_config_survives_a_json_round_trip_unchanged(name):
    """Checkpoints store the config as JSON (tuples come back as lists); resume compares the restored config."""
    import importlib
    import json
    from streamdit_jax.training.distill_config import merge
    overrides = importlib.import_module(f"experiments.configs.{name}").get_config().to_dict()
    if name == "wan_streamdit":  # the local paths its users pass (--config.autoencoder=... and so on)
        overrides = merge(overrides, {"autoencoder": "/vae", "model": {"text": {"path": "/umt5"}},
                                      "data": {"video_dir": "/videos"}})
    if name.startswith("distill"):  # an overlay on the teacher's saved config
        from experiments.streaming import BYTE_BUNDLE
        from streamdit_jax.training.distill_config import student_config
        cfg = student_config(BYTE_BUNDLE, overrides)
    else:
        cfg = TrainConfig.from_dict(overrides)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_unknown_config_keys_and_bad_chunk_sets_raise_errors_naming_them():
    d = tiny_config().to_dict()
    with pytest.raises(ValueError, match="bogus_key"):
        TrainConfig.from_dict({**d, "bogus_key": 1})
    with pytest.raises(ValueError, match="learning_rat"):
        TrainConfig.from_dict({**d, "optim": {"learning_rat": 1.0}})
    with pytest.raises(ValueError, match=r"chunk sizes \[3\]"):
        TrainConfig.from_dict({**d, "chunk_sizes": (1, 3)})


@pytest.mark.parametrize("override,needle", [
    ({"log_every": 0}, "'log_every': 0"), ({"checkpoint_every": 0}, "'checkpoint_every': 0"),
    ({"keep_checkpoints": 0}, "'keep_checkpoints': 0"), ({"sample_every": -1}, "'sample_every': -1"),
    ({"optim": {"learning_rate": -1e-3}}, "learning_rate=-0.001 must be > 0"),
    ({"optim": {"warmup_steps": -5}}, "warmup_steps=-5 must be >= 0"),
    ({"data": {"frame_size": 20}}, r"window \(4, 2, 2\) does not tile the token grid"),
])
def test_configs_that_would_fail_late_or_silently_are_refused_when_built(override, needle):
    """Settings that used to pass validation and then divide by zero after the first compiled step, keep no
    checkpoint at all, or fail only when the model traced the first batch."""
    d = tiny_config().to_dict()
    merged = {**d, **{k: ({**d[k], **v} if isinstance(v, dict) else v) for k, v in override.items()}}
    with pytest.raises(ValueError, match=needle):
        TrainConfig.from_dict(merged)


def test_t2v_steady_windows_draws_plain_t2v_only_for_windows_flagged_steady():
    cfg = tiny_config(t2v_steady_windows=True, chunk_probs=(0.1, 0.1, 0.1, 0.7))
    batch = fixed_batch()
    trainer = Trainer(cfg, one_device_mesh())  # both runs: the same initial state and compiled step
    t2v_counts = {}
    for steady in (False, True):
        _, metrics, _ = trainer.run({**batch, "steady": np.full((8,), steady)}, 4)
        t2v_counts[steady] = sum(float(m["loss_c8_count"]) for m in metrics)
        assert sum(float(m[f"loss_c{c}_count"]) for m in metrics for c in (1, 2, 4, 8)) == 32
    assert t2v_counts[False] == 0 and t2v_counts[True] > 8, t2v_counts  # 32 draws at p=0.7
    with pytest.raises(ValueError, match="'steady' flag"):
        trainer.run(batch, 1)
    with pytest.raises(ValueError, match=r"t2v_steady_windows=True .*needs the T2V chunk size B-K=8"):
        tiny_config(t2v_steady_windows=True, chunk_sizes=(1, 2, 4))
    with pytest.raises(ValueError, match=r"at least one other with a probability > 0"):
        tiny_config(t2v_steady_windows=True, chunk_probs=(0.0, 0.0, 0.0, 1.0))


@pytest.mark.slow
def test_train_cli_stop_after_ends_the_run_with_a_checkpoint_at_that_step_and_profiles_the_chosen_step(tmp_path):
    # --config.model.depth: a model field shapes_tiny.py does not set (it takes the "tiny" preset's 2) still reaches
    # the model
    r = subprocess.run([sys.executable, "-m", "experiments.train", "--config=experiments/configs/shapes_tiny.py",
                        f"--workdir={tmp_path}", "--config.total_steps=11", "--config.data.num_clips=8",
                        "--config.data.clip_len=8", "--config.sample_every=0", "--config.log_every=1",
                        "--config.model.depth=4", "--stop_after=2", "--profile_steps=1:2"], cwd=REPO,
                       capture_output=True, text=True, env=subprocess_env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2"]
    from streamdit_jax.checkpoint import Checkpointer
    ckpt = Checkpointer(str(tmp_path), async_save=False)
    assert ckpt.read_config()["model"]["depth"] == 4
    ckpt.close()
    # the same run traced its step 1 into WORKDIR/profile (one trace, annotated "train")
    from test_profiling import trace_files, traced_steps
    assert len(trace_files(tmp_path / "profile")) == 1 and traced_steps(tmp_path / "profile", "train") == [1]
    r = subprocess.run([sys.executable, "-m", "experiments.train", "--config=experiments/configs/shapes_tiny.py",
                        f"--workdir={tmp_path}", "--stop_after=0"], cwd=REPO, capture_output=True, text=True,
                       env=subprocess_env())
    assert r.returncode == 2 and "--stop_after=0" in r.stderr


@pytest.mark.slow
def test_train_cli_rejects_unknown_override_and_bad_chunk_set_with_named_errors(tmp_path):
    base = [sys.executable, "-m", "experiments.train", "--config=experiments/configs/shapes_tiny.py",
            f"--workdir={tmp_path}"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    r = subprocess.run(base + ["--config.bogus_key=1"], cwd=REPO, capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "bogus_key" in r.stderr
    r = subprocess.run(base + ["--config.chunk_sizes=(1,3)"], cwd=REPO, capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "chunk sizes [3]" in r.stderr


def test_ema_warmup_follows_the_params_early_and_reaches_the_configured_decay():
    cfg = TrainConfig(ema_decay=0.998, autoencoder_factor=0)
    decay = lambda step, c=cfg: float(steps.ema_decay_at(c, step))
    assert decay(0) == pytest.approx(0.1) and decay(90) == pytest.approx(0.91)
    assert decay(100_000) == pytest.approx(0.998)
    # what is left of the random init after 1,400 updates: ~6% with a constant 0.998, ~0 with the warm-up
    left = lambda c: float(np.prod([1.0 * steps.ema_decay_at(c, s) for s in range(1400)]))
    assert left(cfg) < 1e-3 < 0.05 < left(TrainConfig(ema_decay=0.998, ema_warmup=False, autoencoder_factor=0))
