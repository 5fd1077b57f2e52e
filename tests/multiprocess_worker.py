"""One process of the 2-process jax.distributed CPU training run of test_multiprocess, or its 1-process reference.

  python tests/multiprocess_worker.py distributed|reference WORKDIR DATA_DIR OUT_PREFIX

distributed: 2 fake CPU devices per process, jax.distributed from JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
JAX_PROCESS_ID (gloo collectives), each process reads its own tfds.split_for_jax_process("train").
reference: one process with 4 fake devices, fed the concatenation of the same two per-process splits' batches.
The mesh is fsdp over all 4 devices (parameters sharded ACROSS the processes), the global batch 4 (2 per process: not
divisible by the 4 devices per process count, only globally), and a preview GIF every 3 steps of the 6 (every process
must take part; one micro step per chunk: sample_steps=4 over the buffer's 4 chunks). PREEMPT_AT=N: process 1 sends
itself SIGTERM when it reads its N-th batch.
"""
import json
import os
import sys

mode, workdir, data_dir, out = sys.argv[1:5]
os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""),
                                    f"--xla_force_host_platform_device_count={2 if mode == 'distributed' else 4}"])
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from streamdit_jax import parallel  # noqa: E402
from streamdit_jax.data import pipeline, tfds_builders  # noqa: E402
from streamdit_jax.models import get_model_config  # noqa: E402
from streamdit_jax.parallel import MeshConfig  # noqa: E402
from streamdit_jax.configs import DataConfig, OptimConfig, TrainConfig  # noqa: E402
from streamdit_jax.models.conditioned import text_encoder_of  # noqa: E402
from streamdit_jax.training.input import prepare_dataset, train_data_iterator  # noqa: E402
from streamdit_jax.training.loop import train  # noqa: E402

if mode == "distributed":
    parallel.initialize_distributed()

cfg = TrainConfig(model=get_model_config("tiny", latent_channels=12, window=(4, 2, 2)),
                  optim=OptimConfig(learning_rate=2e-3, warmup_steps=2),
                  data=DataConfig(frame_size=16, clip_len=12, num_clips=16, num_val_clips=2, data_dir=data_dir),
                  buffer_len=8, chunk_sizes=(1, 2, 4, 8), batch_size=4, total_steps=6, log_every=3,
                  checkpoint_every=100, sample_every=3, sample_steps=4,
                  mesh=MeshConfig((("fsdp", -1),)))


def split_ids(split):
    builder, _ = prepare_dataset(cfg, workdir)
    source = tfds.data_source(tfds_builders.data_source_name(builder), data_dir=data_dir, split=split)
    return sorted(int(source[i]["id"]) for i in range(len(source)))


def two_split_iterator(cfg, workdir):
    """The batches the two processes would read, concatenated along the batch axis (process 0 first)."""
    builder, _ = prepare_dataset(cfg, workdir)
    its = []
    for index in range(2):
        split = tfds.split_for_jax_process("train", process_index=index, process_count=2)
        source = tfds.data_source(tfds_builders.data_source_name(builder), data_dir=data_dir, split=split)
        its.append(iter(pipeline.make_train_dataset(source, window_len=cfg.buffer_len, batch_size=cfg.batch_size // 2,
                                                    seed=cfg.seed,
                                                    tokenize=text_encoder_of(cfg.model).tokenize)))

    class Concatenated:
        def __next__(self):
            parts = [next(it) for it in its]
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

        def get_state(self):
            return {str(i): it.get_state() for i, it in enumerate(its)}

        def set_state(self, state):
            for i, it in enumerate(its):
                it.set_state(state[str(i)])

    return Concatenated()


def preempted_iterator(cfg, workdir):
    """This process's iterator; process 1 gets a SIGTERM when it reads batch PREEMPT_AT."""
    import signal
    it, at = train_data_iterator(cfg, workdir), int(os.environ["PREEMPT_AT"])

    class Preempted:
        reads = 0

        def __next__(self):
            self.reads += 1
            if self.reads == at and jax.process_index() == 1:
                os.kill(os.getpid(), signal.SIGTERM)
            return next(it)

        def get_state(self):
            return it.get_state()

        def set_state(self, state):
            it.set_state(state)

    return Preempted()


iterator = two_split_iterator if mode == "reference" else (
    preempted_iterator if os.environ.get("PREEMPT_AT") else train_data_iterator)
state = train(cfg, workdir, iterator, show_progress=False)
report = {"process_index": jax.process_index(), "process_count": jax.process_count(),
          "global_devices": jax.device_count(), "step": int(state.step)}
if mode == "distributed":
    report["ids"] = split_ids(tfds.split_for_jax_process("train"))
with open(f"{out}.p{jax.process_index()}.json", "w") as f:
    json.dump(report, f)
# parameters are sharded across the processes: every process takes part in gathering them (one program replicating
# the whole tree, not one per parameter), process 0 saves
params = state.params
if mode == "distributed":
    mesh = jax.tree.leaves(params)[0].sharding.mesh
    params = jax.jit(lambda p: p, out_shardings=jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))(params)
    params = jax.tree.map(lambda v: v.addressable_data(0), params)  # the whole array, on every process
flat = jax.tree_util.tree_flatten_with_path(params)[0]
full = {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}
if jax.process_index() == 0:
    np.savez(f"{out}.npz", **full)
