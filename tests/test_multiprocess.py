"""Two processes on localhost with jax.distributed (gloo CPU collectives) train like one process."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from helpers import subprocess_env

pytestmark = pytest.mark.slow
# a busy machine can hold one process minutes behind the other (compiling, importing): the cross-process waits of
# the training loop (parallel.barrier) get far more than they ever need
BARRIER_TIMEOUT_S = "1200"

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "multiprocess_worker.py")


def parallel_barrier_env():
    from streamdit_jax import parallel
    return parallel.BARRIER_TIMEOUT_ENV


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_distributed(workdir, data_dir, out, env, **extra_env):
    """The worker as 2 processes on localhost; asserts both exit 0, returns their reports."""
    port = free_port()
    procs = [subprocess.Popen([sys.executable, WORKER, "distributed", str(workdir), data_dir, str(out)],
                              env={**env, "JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": "2",
                                   "JAX_PROCESS_ID": str(i),
                                   parallel_barrier_env(): BARRIER_TIMEOUT_S, **extra_env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=1500) for p in procs]  # a deadlock between the processes would stop here
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [json.load(open(f"{out}.p{i}.json")) for i in range(2)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 1-process reference run of 6 steps, and the same 6 steps on 2 processes: stopped by a SIGTERM to process 1
    as it reads its 2nd batch, then resumed to the end (shared by the tests: each 2-process run costs ~30 s)."""
    tmp = tmp_path_factory.mktemp("multiprocess")
    data_dir, env = str(tmp / "data"), subprocess_env(drop_jax_settings=True)
    # the reference run first: it also builds the dataset the distributed processes then share
    ref = subprocess.run([sys.executable, WORKER, "reference", str(tmp / "ref"), data_dir, str(tmp / "ref")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    stopped = run_distributed(tmp / "run", data_dir, tmp / "stopped", env, PREEMPT_AT="2")
    saved = sorted(int(d.name) for d in (tmp / "run" / "checkpoints").iterdir() if d.name.isdigit())
    resumed = run_distributed(tmp / "run", data_dir, tmp / "resumed", env)
    return tmp, stopped, saved, resumed


def assert_close_to_reference(tmp_path, prefix):
    """The 2-process run's parameters equal the 1-process run's: the same global batches and steps, up to the
    cross-process reduction order (a batch read twice or skipped over a resume differs by far more)."""
    dist, single = np.load(tmp_path / f"{prefix}.npz"), np.load(tmp_path / "ref.npz")
    assert sorted(dist.files) == sorted(single.files)
    for name in single.files:
        np.testing.assert_allclose(dist[name], single[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_two_process_training_matches_one_process_and_reads_disjoint_splits(runs):
    tmp_path, _, _, reports = runs
    assert [r["process_count"] for r in reports] == [2, 2] and [r["global_devices"] for r in reports] == [4, 4]
    assert [r["step"] for r in reports] == [6, 6]
    ids0, ids1 = set(reports[0]["ids"]), set(reports[1]["ids"])
    assert ids0 and ids1 and not ids0 & ids1 and len(ids0 | ids1) == 16  # disjoint, together the whole split
    # the previews ran on both processes (parameters sharded across them), process 0 wrote them
    assert sorted(p.name for p in (tmp_path / "run").glob("sample_*.gif")) == ["sample_0000003.gif",
                                                                                "sample_0000006.gif"]
    assert_close_to_reference(tmp_path, "resumed")


def test_a_sigterm_on_one_process_stops_both_at_one_step_and_the_resumed_run_ends_where_an_uninterrupted_one_does(
        runs):
    tmp_path, stopped, saved, resumed = runs
    # before the fix both processes hung in the stopped run: one in its checkpoint save, the other in its next step.
    # Process 1 got SIGTERM as it read its 2nd batch: both stopped after step 1 or 2, with that step saved
    steps = [r["step"] for r in stopped]
    assert steps[0] == steps[1] and 1 <= steps[0] < 6, steps
    assert saved == [steps[0]]
    # resumed, each process continued from ITS OWN data position (the checkpoint holds both): the reference's 6 steps
    assert [r["step"] for r in resumed] == [6, 6]
    assert_close_to_reference(tmp_path, "resumed")


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
