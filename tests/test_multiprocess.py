"""Two processes on localhost with jax.distributed (gloo CPU collectives) train like one process."""
import json
import os
import socket
import subprocess
import sys

import numpy as np

from helpers import subprocess_env

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "multiprocess_worker.py")


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_process_training_matches_one_process_and_reads_disjoint_splits(tmp_path):
    data_dir = str(tmp_path / "data")
    env = subprocess_env(drop_jax_settings=True)
    # the reference run first: it also builds the dataset the distributed processes then share
    ref = subprocess.run([sys.executable, WORKER, "reference", str(tmp_path / "ref"), data_dir, str(tmp_path / "ref")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    port = free_port()
    procs = [subprocess.Popen([sys.executable, WORKER, "distributed", str(tmp_path / "dist"), data_dir,
                               str(tmp_path / "dist")],
                              env={**env, "JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": "2",
                                   "JAX_PROCESS_ID": str(i)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    reports = [json.load(open(tmp_path / f"dist.p{i}.json")) for i in range(2)]
    assert [r["process_count"] for r in reports] == [2, 2] and [r["global_devices"] for r in reports] == [4, 4]
    assert [r["step"] for r in reports] == [10, 10]
    ids0, ids1 = set(reports[0]["ids"]), set(reports[1]["ids"])
    assert ids0 and ids1 and not ids0 & ids1 and len(ids0 | ids1) == 16  # disjoint, together the whole split
    # the preview ran on both processes (parameters sharded across them), process 0 wrote it
    assert sorted(p.name for p in (tmp_path / "dist").glob("sample_*.gif")) == ["sample_0000005.gif",
                                                                                 "sample_0000010.gif"]
    dist, single = np.load(tmp_path / "dist.npz"), np.load(tmp_path / "ref.npz")
    assert sorted(dist.files) == sorted(single.files)
    for name in single.files:  # same global batches, same steps: equal up to cross-process reduction order
        np.testing.assert_allclose(dist[name], single[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_a_sigterm_reaching_one_process_stops_both_at_the_same_step_with_a_checkpoint(tmp_path):
    data_dir = str(tmp_path / "data")
    env = subprocess_env(drop_jax_settings=True)
    port = free_port()
    procs = [subprocess.Popen([sys.executable, WORKER, "distributed", str(tmp_path / "run"), data_dir,
                               str(tmp_path / "run")],
                              env={**env, "JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": "2",
                                   "JAX_PROCESS_ID": str(i), "PREEMPT_AT": "4"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]  # before the fix: both hung here (one saving, one stepping)
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    steps = [json.load(open(tmp_path / f"run.p{i}.json"))["step"] for i in range(2)]
    assert steps[0] == steps[1] and 3 <= steps[0] < 10, steps
    saved = sorted(int(d.name) for d in (tmp_path / "run" / "checkpoints").iterdir() if d.name.isdigit())
    assert saved == [steps[0]]


def test_entry_points_default_to_distributed_init_only_when_the_launch_environment_asks(monkeypatch):
    """The launch scripts export STREAMDIT_DISTRIBUTED=1; anything else leaves a run single-process."""
    from streamdit_jax import parallel

    for value, expected in (("1", True), ("0", False), ("", False), ("yes", False)):
        monkeypatch.setenv(parallel.DISTRIBUTED_ENV, value)
        assert parallel.distributed_requested() is expected, value
    monkeypatch.delenv(parallel.DISTRIBUTED_ENV)
    assert parallel.distributed_requested() is False
    launch = os.path.join(HERE, "..", "launch")
    for script in ("tpu_pod.sh", "gpu_slurm.sh"):
        assert f"{parallel.DISTRIBUTED_ENV}=1" in open(os.path.join(launch, script)).read(), script
