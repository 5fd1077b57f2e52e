"""The training loop around the pure train step: data, resume, checkpoints, metrics, progress, preemption, NaN guard.

- resumes automatically from the latest checkpoint in WORKDIR (state, data-iterator state; the model config must
  match the saved one, other settings such as total_steps may change);
- SIGTERM -> checkpoint and return normally (exit 0 in the entry point);
- a non-finite loss or gradient leaves the state unchanged in the step; the loop stops with ``NonFiniteError`` one
  step later (it never saves past it), keeping the last good checkpoint;
- multi-process: the batch is split by the global batch size, every process stops at the same step (SIGTERM or a
  time limit seen by any one of them), every process takes part in the preview;
- host 0: tqdm progress with steps/s and ETA, metrics.jsonl, TensorBoard event files (tensorboardX), sample GIFs.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading
import time
from typing import Callable, Iterator, Optional

import jax
import numpy as np
from tqdm import tqdm

from streamdit_jax import parallel
from streamdit_jax.checkpoint import Checkpointer
from streamdit_jax.fileio import write_text_atomic
from streamdit_jax.models import autoencoder_dirs
from streamdit_jax import restore
from streamdit_jax.profiling import ProfileWindow
from streamdit_jax.training import distill, partial_init, sampling_preview, steps
from streamdit_jax.configs import TrainConfig

log = logging.getLogger(__name__)


class NonFiniteError(RuntimeError):
    """Raised when the loss or the gradients stop being finite."""


class ConfigMismatchError(ValueError):
    """Raised when WORKDIR holds a checkpoint of a different model."""


def truncate_metrics(path: str, last_step: int) -> int:
    """Rewrites metrics.jsonl (atomically) without the rows logged after ``last_step`` and without a torn last line:
    a run killed after its last checkpoint logged steps it will compute again when resumed. Returns the rows
    dropped."""
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        lines = f.read().splitlines()
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill in mid-write
        if isinstance(row, dict) and row.get("step", 0) <= last_step:
            kept.append(line)
    if len(kept) != len(lines):
        write_text_atomic(path, "".join(line + "\n" for line in kept))
    return len(lines) - len(kept)


class MetricsWriter:
    """metrics.jsonl (flushed every write) + TensorBoard event files; host 0 only.

    ``resumed_step``: the step a resumed run restarts from. Rows of steps after it (logged by the killed run after
    its last checkpoint) are dropped from metrics.jsonl, and TensorBoard is told to discard its events from there
    (``purge_step``), so both logs hold each step once."""

    def __init__(self, workdir: str, enabled: bool = True, resumed_step: Optional[int] = None):
        self.enabled = enabled
        if not enabled:
            return
        path = os.path.join(workdir, "metrics.jsonl")
        if resumed_step is not None:
            dropped = truncate_metrics(path, resumed_step)
            if dropped:
                log.info("metrics.jsonl: dropped %d rows logged after step %d (the checkpoint resumed from)",
                         dropped, resumed_step)
        self.jsonl = open(path, "a")
        from tensorboardX import SummaryWriter  # no TensorFlow needed
        self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"),
                                purge_step=None if resumed_step is None else resumed_step + 1)

    def write(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        self.jsonl.write(json.dumps({"step": step, **{k: float(v) for k, v in metrics.items()}}) + "\n")
        self.jsonl.flush()
        for k, v in metrics.items():
            self.tb.add_scalar(k, float(v), step)
        self.tb.flush()

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            self.tb.close()


def summarize(window: list[dict], chunk_sizes) -> dict:
    """Means over the steps since the last log; per-chunk-size losses from their sums and counts."""
    host = jax.device_get(window)
    out = {k: float(np.mean([m[k] for m in host])) for k in ("loss", "grad_norm", "learning_rate")}
    out["finite"] = float(min(m["finite"] for m in host))
    for c in chunk_sizes:
        n = sum(m.get(f"loss_c{c}_count", 0) for m in host)  # distillation has no per-chunk-size losses
        if n:
            out[f"loss_c{c}"] = float(sum(m[f"loss_c{c}_sum"] for m in host) / n)
    return out


class _Preemption:
    """Turns SIGTERM into a flag the loop checks between steps (only installable from the main thread)."""

    def __init__(self):
        self.requested = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        log.warning("SIGTERM received: saving a checkpoint and stopping")
        self.requested = True

    def restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def agree_to_stop(wants_to_stop: bool) -> bool:
    """True on every process as soon as ANY process wants to stop (SIGTERM, time limit). Called by all processes at
    the same step, so they stop together: one that stopped alone would wait forever in its checkpoint save for the
    others, which would wait in the next step's collectives for it."""
    if jax.process_count() == 1:
        return wants_to_stop
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.asarray([wants_to_stop]))))


PER_PROCESS = "per_process"  # the checkpoint's data item: {PER_PROCESS: {process index: iterator state}}


def gather_data_states(local: dict) -> dict:
    """Every process's data-iterator state, keyed by process index: the checkpoint's data item (written by process
    0 only, so it must hold the others' positions too for a multi-process resume to continue exactly)."""
    if jax.process_count() == 1:
        return {PER_PROCESS: {"0": local}}
    from jax.experimental import multihost_utils
    blob = np.frombuffer(json.dumps(local).encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.asarray([blob.size], np.int32))).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[:blob.size] = blob
    rows = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(sizes), -1)
    return {PER_PROCESS: {str(i): json.loads(bytes(row[:n]).decode()) for i, (row, n) in enumerate(zip(rows, sizes))}}


def own_data_state(saved: dict) -> dict:
    """This process's iterator state from a checkpoint's data item (older checkpoints hold one state: process
    0's, which every process then resumes from)."""
    if PER_PROCESS not in saved:
        return saved
    states = saved[PER_PROCESS]
    mine = states.get(str(jax.process_index()))
    if mine is None:
        raise ValueError(f"the checkpoint holds the data positions of processes {sorted(states, key=int)}, not of "
                         f"process {jax.process_index()}: resume with the process count it was saved with")
    return mine


# Batch entries that are not examples but the same array on every process (the null prompt's precomputed embedding,
# for caption dropout): replicated with their local shape, not concatenated over the processes.
SHARED_BATCH_KEYS = ("null_text", "null_text_mask")


def global_batch_shardings(mesh, local: dict) -> tuple[dict, dict]:
    """(shardings, global shapes) of a batch of which this process holds ``local``: the batch axis is split over
    the data-parallel mesh axes by the GLOBAL batch size (every process contributes the same number of examples);
    the SHARED_BATCH_KEYS are replicated. ValueError when the global batch cannot be split so that each process owns
    its own examples."""
    n = jax.process_count()
    examples = {k: v for k, v in local.items() if k not in SHARED_BATCH_KEYS}
    shapes = {k: (v.shape[0] * n,) + v.shape[1:] for k, v in examples.items()}
    shardings = steps.batch_shardings(mesh, {k: jax.ShapeDtypeStruct(shapes[k], v.dtype) for k, v in examples.items()})
    shared = [k for k in local if k in SHARED_BATCH_KEYS]
    shapes.update({k: local[k].shape for k in shared})
    shardings.update({k: parallel.replicated(mesh) for k in shared})
    if n > 1:
        for k, sharding in ((k, shardings[k]) for k in examples):
            per_shard = sharding.shard_shape(shapes[k])[0]
            if (shapes[k][0] // per_shard) % n:
                raise ValueError(f"global batch {shapes[k][0]} ({n} processes x {local[k].shape[0]}) cannot be split "
                                 f"over the data-parallel axes of mesh {dict(mesh.shape)} so that each process owns its "
                                 f"examples (batch '{k}' sharded {sharding.spec}); use a batch_size divisible by the "
                                 f"data x fsdp devices")
    return shardings, shapes


def check_finite(metrics: dict, step: int, ckpt) -> None:
    """NonFiniteError naming the step (the last good checkpoint is kept) unless the step's loss and gradients were
    finite (``metrics`` of a finished step)."""
    if float(metrics["finite"]) < 1:
        raise NonFiniteError(
            f"non-finite loss or gradients at step {step} (loss={float(metrics['loss'])}, grad_norm="
            f"{float(metrics['grad_norm'])}); parameters were not updated by that step and the last good checkpoint "
            f"(step {ckpt.latest_step()}) is kept in {ckpt.directory}")


def check_resumable(saved: dict, current: dict) -> None:
    """The saved model config must equal the current one (both as saved: ``restore.portable_config``); other
    differences are logged."""
    if saved.get("model") != json.loads(json.dumps(current["model"])):
        diff = sorted(k for k in current["model"] if saved.get("model", {}).get(k) != current["model"][k])
        raise ConfigMismatchError(f"the checkpoint's model config differs from the current one in {diff}; "
                                  f"use a new --workdir or the saved config")
    changed = sorted(k for k in current if k != "model" and saved.get(k) != json.loads(json.dumps(current[k])))
    if changed:
        log.info("resuming with changed settings: %s", changed)


UNNAMED_LATENTS = "precomputed latents"  # no autoencoder named: latents made outside (e.g. an imported Wan2.1)


def describe_autoencoder(cfg: TrainConfig) -> str:
    """The latent space a config trains in: the patch autoencoder's factor, or the learned one's fingerprint."""
    if cfg.autoencoder:
        kind = "Wan VAE" if autoencoder_dirs.is_wan_vae_dir(cfg.autoencoder) else "learned autoencoder"
        return f"{kind} {autoencoder_dirs.autoencoder_fingerprint(cfg.autoencoder)}"
    return f"patch autoencoder factor {cfg.autoencoder_factor}" if cfg.autoencoder_factor else UNNAMED_LATENTS


def load_start_params(path: str, cfg: TrainConfig, mesh, role: str):
    """EMA parameters of the checkpoint at ``path`` (a distillation teacher, or ``init_from`` for fine-tuning) on
    ``mesh``; its model must be ``cfg.model`` up to compute settings and a frozen encoder's location
    (``partial_init.parameter_differences``; the encoder itself must be the same: ``frozen_encoder_conflict``) and
    its autoencoder ``cfg``'s, because the run starts from (or learns from) these parameters and they predict in that
    autoencoder's latent space. A checkpoint that names no autoencoder (an imported backbone) starts a run on any;
    a teacher's must match. An export names no encoder directory, only what its encoder is (its text_encoder.json):
    this run's encoder directory must hold that model."""
    text = cfg.model.text
    # this run's encoder directory (the installed MiniLM when the config names none), checked against the record
    local = None
    if text.kind != "byte" and restore.read_text_encoder_record(path) is not None:
        local = text.path or (restore.default_encoder_directory(text.kind) or None)
    try:
        source_cfg, _, params = restore.load_for_inference(path, mesh=mesh, text_encoder=local)
    except restore.TextEncoderMismatch as e:
        raise ConfigMismatchError(f"{role} {path!r}: {e}; the model was trained to read that encoder's states") from e
    if role != "teacher" and cfg.init_fresh:
        if not partial_init.models_differ_only_in_text(cfg.model, source_cfg.model):
            diff = sorted(k for k, v in dataclasses.asdict(cfg.model).items()
                          if k != "text" and dataclasses.asdict(source_cfg.model).get(k) != v)
            raise ConfigMismatchError(f"{role} {path!r} differs from this run's model in {diff}; with init_fresh "
                                      f"only model.text may differ")
        params, kept = partial_init.merge_fresh(params, steps.fresh_params(cfg, mesh), cfg.init_fresh)
        log.info("%s: %d parameters start fresh (init_fresh): %s", role, len(kept), kept)
    elif diff := partial_init.parameter_differences(cfg.model, source_cfg.model):
        raise ConfigMismatchError(f"{role} {path!r} is a different model than this run's config (differs in {diff}); "
                                  f"the run starts from its parameters, so they must match (compute settings "
                                  f"{list(partial_init.COMPUTE_FIELDS)} may differ)")
    elif conflict := partial_init.frozen_encoder_conflict(cfg.model.text, source_cfg.model.text):
        raise ConfigMismatchError(f"{role} {path!r}: {conflict}; the model was trained to read that encoder's states")
    theirs, ours = describe_autoencoder(source_cfg), describe_autoencoder(cfg)
    if theirs == UNNAMED_LATENTS and role != "teacher":
        # an imported pretrained backbone (experiments.import_weights) names no autoencoder: its latent space is the
        # one it was released with (Wan2.1's: the Wan VAE), which only the user can vouch for
        log.warning("%s %r names no autoencoder (an imported backbone): fine-tuning it in the latent space of the "
                    "%s, which must be the one it was released with (Wan2.1's: the Wan VAE)", role, path, ours)
    elif theirs != ours:
        hint = (f"; pass --config.autoencoder={source_cfg.autoencoder}" if source_cfg.autoencoder else
                f"; set --config.autoencoder='' --config.autoencoder_factor={source_cfg.autoencoder_factor}")
        raise ConfigMismatchError(f"{role} {path!r} was trained on the {theirs}, this run's config uses the {ours}: "
                                  f"its parameters predict in the other latent space{hint}")
    return params


def load_teacher(cfg: TrainConfig, mesh):
    """The distillation teacher's EMA parameters on ``mesh``; its model must be the student's."""
    return load_start_params(cfg.distill.teacher, cfg, mesh, "teacher")


def train(cfg: TrainConfig, workdir: str, data_iterator_fn: Callable[[TrainConfig, str], Iterator],
          *, stop_after: Optional[int] = None, time_limit_s: Optional[float] = None,
          show_progress: bool = True, profile_steps: Optional[tuple[int, int]] = None) -> steps.TrainState:
    """Trains to ``cfg.total_steps`` (or ``stop_after`` steps / ``time_limit_s`` seconds in this call), resuming
    from WORKDIR. Stopping early for any reason (limit, SIGTERM) writes a checkpoint first.

    With ``cfg.distill`` set the same loop distills: the teacher (``cfg.distill.teacher``, a training workdir) is
    loaded onto the mesh, a fresh student starts from its EMA parameters, and every step is ``distill_step``.

    ``data_iterator_fn(cfg, workdir)`` returns this process's iterator of numpy batches with grain-style
    ``get_state()``/``set_state()``.

    ``profile_steps`` (A, B) writes a ``jax.profiler`` trace of steps A..B-1 (the state's step numbers) to
    WORKDIR/profile (WORKDIR/profile/process_<i> with several processes); see ``streamdit_jax.profiling``.
    """
    os.makedirs(workdir, exist_ok=True)
    host0 = jax.process_index() == 0
    cfg = restore.with_local_autoencoder(cfg, workdir, stage=host0)
    mesh = parallel.make_mesh(cfg.mesh)
    log.info("process %d of %d, %d local / %d global devices, mesh %s", jax.process_index(), jax.process_count(),
             jax.local_device_count(), jax.device_count(), dict(mesh.shape))
    if cfg.batch_size % jax.process_count():
        raise ValueError(f"batch_size={cfg.batch_size} is not divisible by the {jax.process_count()} processes")
    ckpt = Checkpointer(workdir, max_to_keep=cfg.keep_checkpoints, async_save=cfg.async_checkpoint)
    data = data_iterator_fn(cfg, workdir)
    teacher = load_teacher(cfg, mesh) if cfg.distill is not None else None
    resuming = ckpt.latest_step() is not None
    start_params = teacher
    if cfg.init_fresh and not cfg.init_from and not resuming:
        raise ValueError(f"init_fresh={cfg.init_fresh} needs init_from (the checkpoint the other parameters come from)")
    if cfg.init_from and not resuming:
        start_params = load_start_params(cfg.init_from, cfg, mesh, "init_from checkpoint")
        log.info("fine-tuning: starting from the EMA parameters of %s", cfg.init_from)
    saved_config = restore.portable_config(cfg, workdir)  # what every checkpoint of this run holds
    if resuming:
        try:
            saved = ckpt.read_config()
        except Exception as e:
            raise restore.CheckpointError(f"cannot resume from {ckpt.directory!r}: the latest step's config is "
                                          f"missing or unreadable ({type(e).__name__}: {e})") from e
        check_resumable(saved, saved_config)
        graphdef, tx, target, shardings = steps.abstract_train_state(cfg, mesh)
        step_dir = os.path.join(ckpt.directory, str(ckpt.latest_step()))
        restore.verify_step_sizes(step_dir)
        try:
            # a run saved while the DiT owned its text encoder resumes in that layout (restore.to_legacy_layout)
            legacy = restore.is_legacy_params(restore.saved_tree(os.path.join(step_dir, "state")).get("params"))
            state, _, data_state = ckpt.restore(restore.to_legacy_layout(target) if legacy else target)
            state = restore.from_legacy_layout(state) if legacy else state
        except Exception as e:  # tensorstore / orbax errors of a damaged or truncated checkpoint
            raise restore.CheckpointError(
                f"cannot resume from {step_dir!r}: "
                f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''} (delete that "
                f"step's directory to resume from an earlier checkpoint, or use a new --workdir)") from e
        if data_state:
            data.set_state(own_data_state(data_state))
        log.info("resumed from step %d in %s", int(state.step), ckpt.directory)
    else:
        graphdef, tx, state, shardings = steps.create_train_state(cfg, mesh, init_params=start_params)
    step = int(state.step)
    writer = MetricsWriter(workdir, enabled=host0, resumed_step=step if resuming else None)
    # every process runs the preview (its parameters may be sharded across processes); process 0 writes the GIF
    preview = sampling_preview.Preview(cfg, graphdef, mesh) if cfg.sample_every else None
    preempt = _Preemption()
    train_step, batch_sharding = None, None
    bar = tqdm(total=cfg.total_steps, initial=step, disable=not (host0 and show_progress), unit="step",
               dynamic_ncols=True, desc="train")
    window: list[dict] = []
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
    window_start = time.monotonic()
    end = cfg.total_steps if stop_after is None else min(cfg.total_steps, step + stop_after)
    profile_dir = os.path.join(workdir, "profile")
    if jax.process_count() > 1:  # every process traces its own devices; one directory each keeps them apart
        profile_dir = os.path.join(profile_dir, f"process_{jax.process_index()}")
    profile = ProfileWindow(profile_steps, profile_dir)
    try:
        with parallel.activate(mesh):
            while step < end:
                wants_to_stop = preempt.requested or (deadline is not None and time.monotonic() >= deadline)
                if agree_to_stop(wants_to_stop):
                    break
                local = next(data)
                if train_step is None:  # built on the first batch: shapes come from the data
                    batch_sharding, batch_shapes = global_batch_shardings(mesh, local)
                    frozen = steps.replicated_frozen_params(cfg, mesh)
                    if teacher is None:
                        compiled_step = parallel.compile_then_sync(
                            steps.make_train_step(cfg, graphdef, tx, shardings, batch_sharding), "train_step")
                        train_step = lambda s, b: compiled_step(s, b, frozen)
                    else:
                        distill_step = parallel.compile_then_sync(
                            distill.make_distill_step(cfg, graphdef, tx, shardings, batch_sharding), "distill_step")
                        train_step = lambda s, b: distill_step(s, teacher, b, frozen)
                profile.before_step(step)
                with profile.annotate(step, "train"):
                    batch = {k: jax.make_array_from_process_local_data(batch_sharding[k], v, batch_shapes[k])
                             for k, v in local.items()}
                    state, metrics = train_step(state, batch)
                    if window:
                        # One step in flight, no more: the device runs this step while the host waits for the
                        # previous one and prepares the next batch. Without the wait, dispatch runs dozens of steps
                        # ahead, so the progress bar, the time limit and a SIGTERM would all act on steps not yet
                        # computed.
                        check_finite(window[-1], step, ckpt)
                profile.after_step(step, (state, metrics))
                window.append(metrics)
                step += 1
                bar.update(1)
                if step % cfg.log_every == 0 or step == end:
                    summary = summarize(window, cfg.chunk_sizes)
                    summary["steps_per_sec"] = len(window) / (time.monotonic() - window_start)
                    window, window_start = [], time.monotonic()
                    writer.write(step, summary)
                    bar.set_postfix(loss=f"{summary['loss']:.4f}")
                    check_finite(metrics, step, ckpt)  # the steps before it were checked one by one
                if step % cfg.checkpoint_every == 0 or step == cfg.total_steps:
                    check_finite(metrics, step, ckpt)  # a checkpoint labelled `step` must hold step updates
                    ckpt.save(step, state, saved_config, gather_data_states(data.get_state()))
                if preview is not None and (step % cfg.sample_every == 0 or step == cfg.total_steps):
                    path = preview.write_gif(state.ema_params, os.path.join(workdir, f"sample_{step:07d}.gif"),
                                             write=host0)
                    if host0:
                        log.info("wrote %s", path)
            if window:  # stopped between log points (time limit or SIGTERM)
                check_finite(window[-1], step, ckpt)
                writer.write(step, summarize(window, cfg.chunk_sizes))
            if ckpt.latest_step() != step:
                ckpt.save(step, state, saved_config, gather_data_states(data.get_state()), force=True)
    finally:
        bar.close()
        ckpt.close()
        writer.close()
        preempt.restore()
        profile.close()  # a run that stopped inside the window (limit, SIGTERM, error) still writes its trace
    return state
