"""The training loop on the real shapes-world dataset: kill-and-resume, preemption, the NaN guard, outputs."""
import json
import os
import signal

import jax
import numpy as np
import pytest

from streamdit_jax.models import get_model_config
from streamdit_jax.configs import DataConfig, OptimConfig, TrainConfig
from streamdit_jax.training.input import train_data_iterator
from streamdit_jax.training.loop import NonFiniteError, train


def loop_config(**kw):
    base = dict(model=get_model_config("tiny", latent_channels=12, window=(4, 2, 2)),
                optim=OptimConfig(learning_rate=2e-3, warmup_steps=2),
                data=DataConfig(frame_size=16, clip_len=12, num_clips=16, num_val_clips=2),
                buffer_len=8, chunk_sizes=(1, 2, 4, 8), batch_size=4, total_steps=6, log_every=1, checkpoint_every=3,
                sample_every=0, async_checkpoint=True)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("shapes_data"))


def with_data(cfg, data_dir):
    return TrainConfig(**{**cfg.__dict__, "data": DataConfig(**{**cfg.data.__dict__, "data_dir": data_dir})})


def iterator_through(hook):
    """An input factory like train_data_iterator whose n-th batch (from 1) is hook(n, batch)."""

    def make(cfg, workdir):
        it = train_data_iterator(cfg, workdir)

        class Hooked:
            count = 0

            def __next__(self):
                self.count += 1
                return hook(self.count, next(it))

            get_state, set_state = it.get_state, it.set_state

        return Hooked()

    return make


def test_killed_and_resumed_run_ends_with_the_same_parameters_as_one_run(tmp_path, data_dir):
    cfg = with_data(loop_config(), data_dir)
    straight = train(cfg, str(tmp_path / "straight"), train_data_iterator, show_progress=False)
    # "killed" after 4 steps: only the step-3 checkpoint survives in the directory ...
    train(cfg, str(tmp_path / "resumed"), train_data_iterator, stop_after=4, show_progress=False)
    ckpt_dir = tmp_path / "resumed" / "checkpoints"
    for step in os.listdir(ckpt_dir):
        if step.isdigit() and int(step) > 3:
            import shutil
            shutil.rmtree(ckpt_dir / step)
    # ... and the next run resumes from step 3 (model state, optimizer, EMA, data-iterator position)
    resumed = train(cfg, str(tmp_path / "resumed"), train_data_iterator, show_progress=False)
    assert int(resumed.step) == int(straight.step) == 6
    # Same executable, same restored inputs, same per-step rng (fold_in(seed, step)) and the same batches from the
    # restored grain iterator: the result is expected bit-identical; the tiny tolerance only allows for XLA choosing
    # a different reduction order in a separately compiled executable.
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(straight.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    for a, b in zip(jax.tree.leaves(resumed.opt_state), jax.tree.leaves(straight.opt_state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    # step 4 was logged by the "killed" run after its last checkpoint and computed again after the resume: the log
    # keeps each step once, the resumed run's
    lines = [json.loads(l) for l in open(tmp_path / "resumed" / "metrics.jsonl")]
    assert [l["step"] for l in lines] == [1, 2, 3, 4, 5, 6]
    straight_lines = [json.loads(l) for l in open(tmp_path / "straight" / "metrics.jsonl")]
    np.testing.assert_allclose([l["loss"] for l in lines], [l["loss"] for l in straight_lines], rtol=1e-5)


def test_resume_drops_metrics_rows_past_the_checkpoint_and_a_torn_last_line(tmp_path):
    from streamdit_jax.training.loop import truncate_metrics
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": 1.0 / s} for s in (10, 20, 30, 40)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 50, "lo')  # killed in mid-write
    assert truncate_metrics(str(path), 30) == 2
    assert [json.loads(l)["step"] for l in path.read_text().splitlines()] == [10, 20, 30]
    assert truncate_metrics(str(path), 30) == 0


def test_sigterm_saves_a_checkpoint_and_returns(tmp_path, data_dir):
    # total_steps as in the resume test (the same compiled step); neither it (6) nor checkpoint_every is reached
    cfg = with_data(loop_config(checkpoint_every=100), data_dir)

    def preempt_at_the_3rd_batch(count, batch):
        if count == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return batch

    state = train(cfg, str(tmp_path), iterator_through(preempt_at_the_3rd_batch), show_progress=False)
    assert int(state.step) == 3
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3"]


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, data_dir):
    # the resume test's config (the same compiled step), a checkpoint every step; from the 3rd batch on the data makes
    # the loss NaN: token ids past the text encoder's vocabulary embed as NaN (jnp.take fills out-of-range rows)
    cfg = with_data(loop_config(checkpoint_every=1), data_dir)

    def poison_from_the_3rd_batch(count, batch):
        return {**batch, "tokens": np.full_like(batch["tokens"], 10**6)} if count >= 3 else batch

    with pytest.raises(NonFiniteError, match="non-finite loss or gradients") as err:
        train(cfg, str(tmp_path), iterator_through(poison_from_the_3rd_batch), show_progress=False)
    saved = sorted(int(s) for s in os.listdir(tmp_path / "checkpoints") if s.isdigit())
    assert saved == [1, 2] and saved[-1] < cfg.total_steps
    # the run stops AT the first bad step: every step up to it was checkpointed, nothing from it on
    assert f"at step {saved[-1] + 1} " in str(err.value), (saved, str(err.value))
    lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
    assert lines[-1]["finite"] == 0 and all(l["finite"] == 1 for l in lines[:-1])
