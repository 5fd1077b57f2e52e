"""Multistep distillation: the oracle's zero loss, learning on a fixed batch, guidance in the teacher only, resume;
and fine-tuning from a checkpoint (init_from), which shares the start-from-parameters path."""
import dataclasses
import os
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from helpers import subprocess_env

from streamdit_jax.models.text import tokenize_bytes
from streamdit_jax.sampling import buffer
from streamdit_jax.restore import load_for_inference
from streamdit_jax import flow, parallel
from streamdit_jax.checkpoint import Checkpointer
from streamdit_jax.models import get_model_config
from streamdit_jax.partition import NoiseSchedule, Partition, micro_step_table
from streamdit_jax.training import distill, steps
from streamdit_jax.configs import DataConfig, DistillConfig, OptimConfig, TrainConfig
from streamdit_jax.training.input import train_data_iterator
from streamdit_jax.training.loop import ConfigMismatchError, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def perturb(params, seed, scale=0.2):
    """Random offsets on every parameter (so the zero-initialised adaLN-Zero layers contribute too)."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(treedef, [x + scale * flow.gaussian_noise(k, x.shape, x.dtype)
                                        for x, k in zip(leaves, keys)])


def oracle(params, x, tau, cond, frames):
    """The exact straight-path velocity towards params['target'] (Euler on it is exact for any step size)."""
    del cond, frames
    return flow.oracle_velocity(x, tau, params["target"])


@pytest.mark.parametrize("schedule", [NoiseSchedule(), NoiseSchedule("shift", 3.0)])
def test_on_the_oracle_one_student_step_lands_on_the_teachers_s_steps_and_a_random_student_does_not(schedule):
    """The loss plumbing (zero for the exact field, not for a random one). On the oracle one step and s steps land
    alike, so the teacher's step count is checked on a curved field (test_teacher_target_is_the_s_micro_step_...)."""
    partition = Partition.from_buffer(8, 2, 16)  # the paper's K=0, c=2, s=16 on an 8-frame buffer
    table = micro_step_table(partition, schedule)
    target = jax.random.normal(jax.random.key(0), (2, 8, 3, 2, 2))
    x = distill.segment_start(target, flow.gaussian_noise(jax.random.key(1), target.shape), table)
    params = {"target": target}
    teacher = distill.teacher_target(oracle, params, x, None, None, 1.0, table)
    tau = jnp.broadcast_to(jnp.asarray(table.tau_now[0]), x.shape[:2])
    copy = distill.distillation_loss(oracle(params, x, tau, None, None), x, teacher, table)
    np.testing.assert_allclose(np.asarray(copy), 0.0, atol=1e-9)
    random_student = jax.random.normal(jax.random.key(2), x.shape)
    assert np.all(np.asarray(distill.distillation_loss(random_student, x, teacher, table)) > 0.5)


def tiny_distill_config(**kw):
    base = dict(model=get_model_config("tiny", latent_channels=12, window=(4, 2, 2)),
                optim=OptimConfig(learning_rate=3e-3, warmup_steps=1, weight_decay=0.0),
                data=DataConfig(frame_size=16, clip_len=12, num_clips=16, num_val_clips=2),
                buffer_len=8, chunk_sizes=(1, 2, 4, 8), batch_size=4, total_steps=6, log_every=1,
                checkpoint_every=3, sample_every=0, ema_decay=0.9,
                distill=DistillConfig(chunk=2, steps_per_chunk=2, guidance=3.0))
    base.update(kw)
    return TrainConfig(**base)


def fixed_batch(seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (4, 8, 16, 16, 3), dtype=np.uint8)
    from streamdit_jax.models.text import tokenize_bytes
    tokens = tokenize_bytes(["a red circle moving left", "a blue square moving up", "", "a green triangle"], 48)
    return {"frames": jnp.asarray(frames), "tokens": jnp.asarray(tokens)}


def test_distillation_loss_decreases_over_20_steps_on_a_fixed_batch(one_device_distill):
    losses, _ = one_device_distill  # run_distill: the teacher perturbed away from the student's initialisation
    assert len(losses) == 20
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0], losses


def test_the_teacher_is_guided_and_the_student_is_one_conditional_call():
    cfg = tiny_distill_config()
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])
    graphdef, _, state, _ = steps.create_train_state(cfg, mesh)
    student_params, teacher_params = perturb(state.params, 4), perturb(state.params, 5)
    batch = fixed_batch()
    latents = steps.batch_latents(batch, cfg, cfg.make_autoencoder().params)
    rng = jax.random.key(6)
    _, per_example = distill.distill_loss(student_params, teacher_params, graphdef, latents, batch, rng, cfg)
    # the same loss by hand: the teacher's s=2 micro steps WITH guidance w=3, the student's plain conditional call
    table = micro_step_table(cfg.distill_partition(), cfg.schedule)
    x = distill.segment_start(latents, flow.gaussian_noise(rng, latents.shape), table)
    teacher, student = nnx.merge(graphdef, teacher_params), nnx.merge(graphdef, student_params)
    null_tokens = steps.drop_text(rng, batch["tokens"], 1.0, tokenize_bytes([""], batch["tokens"].shape[1]))
    denoise = buffer.model_denoise_fn(graphdef)
    target = distill.teacher_target(denoise, teacher_params, x, teacher.encode_text(batch["tokens"]),
                                    teacher.encode_text(null_tokens), 3.0, table)
    tau = jnp.broadcast_to(jnp.asarray(table.tau_now[0]), x.shape[:2])
    cond = student.encode_text(batch["tokens"])
    expected = distill.distillation_loss(student(x, tau, *cond), x, target, table)
    np.testing.assert_allclose(np.asarray(per_example), np.asarray(expected), rtol=1e-4, atol=1e-6)
    # ... and not with an unguided teacher, nor with a guided student
    unguided = distill.teacher_target(denoise, teacher_params, x, teacher.encode_text(batch["tokens"]), None, 1.0,
                                      table)
    assert not np.allclose(np.asarray(distill.distillation_loss(student(x, tau, *cond), x, unguided, table)),
                           np.asarray(per_example), rtol=1e-3)
    frames = jnp.arange(x.shape[1])
    guided_student = buffer.guided_velocity(denoise, student_params, x, tau, cond,
                                            student.encode_text(null_tokens), 3.0, frames)
    assert not np.allclose(np.asarray(distill.distillation_loss(guided_student, x, target, table)),
                           np.asarray(per_example), rtol=1e-3)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A tiny teacher checkpoint written by the real Checkpointer (random weights: distillation mechanics only):
    (its workdir, the EMA parameters it holds, the random initialisation of tiny_distill_config's model they were
    perturbed from), the parameters on the host."""
    workdir = str(tmp_path_factory.mktemp("teacher"))
    cfg = tiny_distill_config(distill=None)
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])
    _, _, state, _ = steps.create_train_state(cfg, mesh)
    random_init = jax.device_get(state.params)
    state = state.replace(ema_params=perturb(state.ema_params, 7))
    ck = Checkpointer(workdir, async_save=False)
    ck.save(0, state, cfg.to_dict(), {})
    ck.close()
    return workdir, jax.device_get(state.ema_params), random_init


@pytest.fixture(scope="module")
def teacher_dir(teacher_run):
    return teacher_run[0]


def test_distill_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path, teacher_run):
    teacher_dir, teacher, random_init = teacher_run
    data_dir = str(tmp_path / "data")
    cfg = tiny_distill_config(data=DataConfig(frame_size=16, clip_len=12, num_clips=16, num_val_clips=2,
                                              data_dir=data_dir),
                              distill=DistillConfig(teacher=teacher_dir, chunk=2, steps_per_chunk=2, guidance=3.0),
                              total_steps=4, checkpoint_every=2)
    straight = train(cfg, str(tmp_path / "straight"), train_data_iterator, show_progress=False)
    # "killed" after 3 steps; only its step-2 checkpoint is kept, and the next run resumes from it
    train(cfg, str(tmp_path / "resumed"), train_data_iterator, stop_after=3, show_progress=False)
    assert sorted(int(s) for s in os.listdir(tmp_path / "resumed" / "checkpoints") if s.isdigit()) == [2, 3]
    for step in os.listdir(tmp_path / "resumed" / "checkpoints"):
        if step.isdigit() and int(step) > 2:
            shutil.rmtree(tmp_path / "resumed" / "checkpoints" / step)
    resumed = train(cfg, str(tmp_path / "resumed"), train_data_iterator, show_progress=False)
    assert int(resumed.step) == int(straight.step) == 4
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(straight.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    # the student started from the teacher's EMA parameters (not from a random init) and moved away from them (both
    # as the teacher fixture wrote them: the same model and seed as cfg's)
    dist = lambda a, b: float(sum(np.sum((np.asarray(x) - np.asarray(y)) ** 2)
                                  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))
    assert 0 < dist(straight.params, teacher) < 0.25 * dist(random_init, teacher)


def test_fine_tuning_starts_from_the_init_from_checkpoint_and_resume_ignores_it(tmp_path, teacher_dir):
    """init_from (Table 3's fine-tunes): step 0 holds the source's EMA parameters exactly; a model that differs from
    the source's is refused by name; an existing checkpoint in WORKDIR wins over init_from."""
    _, _, source = load_for_inference(teacher_dir)
    data = DataConfig(frame_size=16, clip_len=12, num_clips=8, num_val_clips=2, data_dir=str(tmp_path / "data"))
    cfg = tiny_distill_config(distill=None, init_from=teacher_dir, total_steps=0, data=data)
    state = train(cfg, str(tmp_path / "ft"), train_data_iterator, show_progress=False)
    for got, want in zip(jax.tree.leaves((state.params, state.ema_params)), jax.tree.leaves((source, source))):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    other = tiny_distill_config(distill=None, init_from=teacher_dir, total_steps=0, data=data,
                                model=get_model_config("tiny", latent_channels=12, window=(4, 2, 2), depth=4))
    with pytest.raises(ConfigMismatchError, match="init_from checkpoint .*differs in \\['depth'\\]"):
        train(other, str(tmp_path / "ft_other"), train_data_iterator, show_progress=False)
    # resuming: the saved step-0 state of "ft" is restored even though init_from now names a different model
    resumed = train(dataclasses.replace(other, model=cfg.model), str(tmp_path / "ft"), train_data_iterator,
                    show_progress=False)
    assert int(resumed.step) == 0
    with pytest.raises(ValueError, match="init_from=.* and distill are exclusive"):
        tiny_distill_config(init_from=teacher_dir)


def test_a_checkpoint_starts_a_model_that_differs_only_in_how_it_computes_and_where_its_frozen_encoder_lies():
    """partial_init.parameter_differences, what init_from checks: compute settings and a frozen text encoder's
    location (and the sizes only a trainable encoder has) may differ; anything that changes what the parameters
    mean may not, a trainable encoder's sizes included."""
    from streamdit_jax.models.config import TextEncoderConfig
    from streamdit_jax.training.partial_init import parameter_differences
    umt5 = TextEncoderConfig(kind="t5", path="/here/umt5", width=32, max_len=512)
    wan = get_model_config("wan_tiny", attend_text_padding=True, text=umt5)
    elsewhere = dataclasses.replace(umt5, path="/there/umt5", depth=5, num_heads=4)
    assert parameter_differences(wan.replace(dtype="bfloat16", remat=True, attention_impl="xla",
                                             text=elsewhere), wan) == []
    assert parameter_differences(wan.replace(depth=3, param_dtype="bfloat16"), wan) == ["depth", "param_dtype"]
    assert parameter_differences(wan.replace(attend_text_padding=False), wan) == ["attend_text_padding"]
    assert parameter_differences(wan.replace(text=dataclasses.replace(umt5, max_len=16)), wan) == ["text.max_len"]
    byte = get_model_config("tiny")
    assert parameter_differences(byte.replace(text=dataclasses.replace(byte.text, depth=3)), byte) == ["text.depth"]
    assert parameter_differences(byte.replace(text=umt5), byte) == ["text.depth", "text.kind", "text.max_len",
                                                                    "text.path"]


def test_fine_tuning_with_a_swapped_text_encoder_starts_only_the_named_parameters_fresh(tmp_path, teacher_dir):
    """init_fresh: the parameters it names come from this run's initialisation, every other one from the
    checkpoint, exactly; a pattern that matches nothing, or a reshaped parameter left unnamed, is refused by name."""
    from streamdit_jax import weights
    _, _, source = load_for_inference(teacher_dir)
    data = DataConfig(frame_size=16, clip_len=12, num_clips=8, num_val_clips=2, data_dir=str(tmp_path / "data"))
    base = tiny_distill_config(distill=None, init_from=teacher_dir, total_steps=0, data=data)
    model = dataclasses.replace(base.model, text=dataclasses.replace(base.model.text, width=24, max_len=20))
    readers = (r"text_encoder\..*", r"denoiser\.blocks\.\w+\.cross\.(k|v)\.kernel")
    cfg = dataclasses.replace(base, model=model, init_fresh=readers)
    state = train(cfg, str(tmp_path / "swap"), train_data_iterator, show_progress=False)
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1])
    fresh, theirs = weights.flatten(steps.fresh_params(cfg, mesh)), weights.flatten(source)
    got = weights.flatten(state.params)
    kept_fresh = [n for n in got if n.startswith("text_encoder.") or ".cross.k.kernel" in n or ".cross.v.kernel" in n]
    assert len(kept_fresh) > 4 and len(got) - len(kept_fresh) > 10
    for name, value in got.items():
        want = fresh[name] if name in kept_fresh else theirs[name]
        np.testing.assert_array_equal(np.asarray(value), np.asarray(want), err_msg=name)
    with pytest.raises(ValueError, match=r"shapes differ for \['denoiser\.blocks\.plain\.cross\.k\.kernel"):
        train(dataclasses.replace(cfg, init_fresh=readers[:1]), str(tmp_path / "a"), train_data_iterator,
              show_progress=False)
    with pytest.raises(ValueError, match=re.escape(r"init_fresh patterns ['denoiser\.nothing'] match no parameter")):
        train(dataclasses.replace(cfg, init_fresh=readers + (r"denoiser\.nothing",)), str(tmp_path / "b"),
              train_data_iterator, show_progress=False)
    with pytest.raises(ConfigMismatchError, match=r"differs from this run's model in \['depth'\]; with init_fresh"):
        train(dataclasses.replace(cfg, model=dataclasses.replace(model, depth=4)), str(tmp_path / "c"),
              train_data_iterator, show_progress=False)
    with pytest.raises(ValueError, match=r"init_fresh entry '\(' is not a regular expression"):
        dataclasses.replace(cfg, init_fresh=("(",))


@pytest.mark.slow
def test_distill_cli_rejects_a_missing_teacher_and_an_invalid_scheme(tmp_path, teacher_dir):
    env = subprocess_env()
    run = lambda *a: subprocess.run([sys.executable, "-m", "experiments.distill",
                                     "--config=experiments/configs/distill_shapes.py", f"--workdir={tmp_path}/w", *a],
                                    cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    r = run("--teacher=/nonexistent/teacher")
    assert r.returncode == 2 and "/nonexistent/teacher" in r.stderr
    r = run(f"--teacher={teacher_dir}", "--config.distill.chunk=3")
    assert r.returncode == 2 and "distill.chunk=3" in r.stderr


def run_distill(mesh, n, keep_params_at=None):
    """n distillation steps of tiny_distill_config(total_steps=20) on fixed_batch(), the teacher a perturbed copy of
    the student's initialisation: (state, losses, host copy of the params after ``keep_params_at`` steps)."""
    cfg = tiny_distill_config(total_steps=20)
    graphdef, tx, state, shardings = steps.create_train_state(cfg, mesh)
    teacher = jax.device_put(perturb(jax.device_get(state.params), 3), shardings.params)  # unlike the student
    batch = fixed_batch()
    batch_sharding = steps.batch_shardings(mesh, batch)
    step = distill.make_distill_step(cfg, graphdef, tx, shardings, batch_sharding)
    batch = jax.device_put(batch, batch_sharding)
    losses, kept = [], None
    with parallel.activate(mesh):
        for i in range(n):
            state, metrics = step(state, teacher, batch, steps.replicated_frozen_params(cfg, mesh))
            losses.append(float(metrics["loss"]))
            if i + 1 == keep_params_at:
                kept = jax.device_get(state.params)
    return state, losses, kept


@pytest.fixture(scope="module")
def one_device_distill():
    """run_distill on one device for 20 steps, once for the module: the learning test's run and (its first 2 steps)
    the reference of the sharded-mesh test. (losses, params after 2 steps on the host)."""
    _, losses, params_2 = run_distill(parallel.make_mesh(parallel.MeshConfig((("data", 1),)), jax.devices()[:1]),
                                      20, keep_params_at=2)
    return losses, params_2


def test_distill_step_on_a_data_fsdp_context_mesh_matches_one_device(one_device_distill):
    losses, single = one_device_distill
    l1 = losses[:2]
    mesh = parallel.make_mesh(parallel.MeshConfig((("data", 2), ("fsdp", 2), ("context", 2))), jax.devices()[:8])
    sharded, l8, _ = run_distill(mesh, 2)
    assert int(sharded.step) == 2
    np.testing.assert_allclose(l8, l1, rtol=2e-4)
    for a, b in zip(jax.tree.leaves(sharded.params), jax.tree.leaves(single)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5, rtol=2e-3)
    fc1 = sharded.params["denoiser"]["blocks"]["plain"]["fc1"]["kernel"]
    assert len(fc1.sharding.device_set) == 8 and fc1.sharding.spec[1] == "fsdp"


def curved_field(params, x, tau, cond, frames):
    """A velocity on which Euler is NOT exact (nonlinear in tau, x-dependent): the teacher's result depends on how
    many micro steps it takes. ``cond`` [b, 1] scales the per-frame drive (0 = the unconditional branch)."""
    del frames
    t = tau[:, :, None, None, None]
    return cond[:, :, None, None, None] * params["a"] * jnp.cos(3.0 * t) - 0.5 * x * (1.0 + t)


def curved_field_np(x, tau, cond, a):
    t = tau[:, :, None, None, None]
    return cond[:, :, None, None, None] * a * np.cos(3.0 * t) - 0.5 * x * (1.0 + t)


@pytest.mark.parametrize("guidance", [None, 3.0], ids=["unguided", "cfg3"])
@pytest.mark.parametrize("schedule", [NoiseSchedule(), NoiseSchedule("shift", 3.0)], ids=["linear", "shift3"])
def test_teacher_target_is_the_s_micro_step_euler_sum_not_one_step_over_the_segment(schedule, guidance):
    """Sec. 4.2: on a field where one Euler step over a segment differs from s, ``teacher_target`` equals numpy's
    Euler sum over the s micro steps of the teacher's table (with CFG u_uncond + w (u_cond - u_uncond) when
    guided), and not the single step over the whole segment."""
    partition = Partition.from_buffer(9, 2, 4, reference_frames=1)  # K=1, c=2, N=4, s=4
    table = micro_step_table(partition, schedule)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(9, 3, 2, 2)).astype(np.float32)
    x = rng.normal(size=(2, 9, 3, 2, 2)).astype(np.float32)
    cond = np.array([[1.0], [-0.5]], np.float32)
    null = None if guidance is None else np.zeros_like(cond)
    w = 1.0 if guidance is None else guidance
    got = np.asarray(distill.teacher_target(curved_field, {"a": jnp.asarray(a)}, jnp.asarray(x), jnp.asarray(cond),
                                            None if null is None else jnp.asarray(null), jnp.float32(w), table))

    def velocity_np(y, tau):
        tau = np.broadcast_to(tau, y.shape[:2]).astype(np.float64)
        v = curved_field_np(y, tau, cond, a)
        if null is None:
            return v
        v_null = curved_field_np(y, tau, null, a)
        return v_null + w * (v - v_null)

    y = x.astype(np.float64)
    for m in range(partition.s):  # the teacher's s micro steps, one Euler step each
        dtau = (table.tau_next[m] - table.tau_now[m]).astype(np.float64)[None, :, None, None, None]
        y = y + velocity_np(y, table.tau_now[m]) * dtau
    segment = (table.tau_next[-1] - table.tau_now[0]).astype(np.float64)[None, :, None, None, None]
    one_step = x + velocity_np(x.astype(np.float64), table.tau_now[0]) * segment
    np.testing.assert_allclose(got, y, rtol=1e-4, atol=1e-5,
                               err_msg=f"teacher_target is not the Euler sum over the s={partition.s} micro steps")
    np.testing.assert_array_equal(got[:, :1], x[:, :1])  # the reference frame does not move
    moving = np.abs(y - one_step)[:, 1:].max()
    assert moving > 1e-2, moving  # guard: s steps and one step differ on this field
    assert np.abs(got - one_step)[:, 1:].max() > 0.5 * moving


def test_a_student_of_precomputed_data_reads_the_teachers_data_only_when_it_is_the_same_dataset(tmp_path):
    """distill_config.shared_data_dir: the teacher's data/ (absolute) for a student that reads precomputed text or
    latents of the teacher's frames dataset; its own data dir otherwise (another dataset, one of its own, on the fly,
    or a teacher without data/)."""
    from streamdit_jax.models.config import TextEncoderConfig
    from streamdit_jax.training.distill_config import shared_data_dir
    teacher = tmp_path / "teacher"
    (teacher / "data").mkdir(parents=True)
    minilm = get_model_config("tiny", latent_channels=12, text=TextEncoderConfig(kind="minilm", width=384, max_len=16))
    data = DataConfig(frame_size=16, clip_len=12, num_clips=8, num_val_clips=2, text_source="precomputed")
    taught = TrainConfig(model=minilm, data=data, buffer_len=8, chunk_sizes=(1, 2, 4, 8))
    student = dataclasses.replace(taught, distill=DistillConfig(teacher=str(teacher)))
    with_data = lambda **kw: dataclasses.replace(student, data=dataclasses.replace(data, **kw))
    assert shared_data_dir(str(teacher), taught, student) == str(teacher / "data")
    relative = os.path.relpath(teacher, os.getcwd())
    assert shared_data_dir(relative, taught, student) == str(teacher / "data")  # saved in the student's config
    assert shared_data_dir(str(teacher), taught, with_data(num_clips=16)) == ""  # another shapes-world dataset
    assert shared_data_dir(str(teacher), taught, with_data(data_dir=str(tmp_path / "own"))) == ""
    assert shared_data_dir(str(teacher), taught, with_data(text_source="on_the_fly")) == ""
    assert shared_data_dir(str(tmp_path / "export"), taught, student) == ""  # no data/ beside it


def test_a_frozen_encoder_elsewhere_is_accepted_only_when_its_config_is_the_same(tmp_path):
    """partial_init.frozen_encoder_conflict (what init_from checks beyond parameter_differences): the same encoder
    in another directory passes; another architecture of the same kind and width is named."""
    import json
    from streamdit_jax.models.config import TextEncoderConfig
    from streamdit_jax.training.partial_init import frozen_encoder_conflict
    umt5 = {"model_type": "umt5", "d_model": 32, "num_layers": 2}
    for name, config in (("a", umt5), ("b", umt5), ("t5", {**umt5, "model_type": "t5"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    text = lambda name: TextEncoderConfig(kind="t5", width=32, max_len=512, path=str(tmp_path / name))
    assert frozen_encoder_conflict(text("a"), text("b")) == ""  # a copy
    assert frozen_encoder_conflict(text("a"), text("a")) == ""
    assert "differs in ['model_type']" in frozen_encoder_conflict(text("a"), text("t5"))
    assert frozen_encoder_conflict(text("a"), text("gone")) == ""  # unreadable: the run's own loader names it
