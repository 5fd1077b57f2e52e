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
    """A 1-process reference run and an uninterrupted 2-process run of the same 6 steps (shared by the tests)."""
    tmp = tmp_path_factory.mktemp("multiprocess")
    data_dir, env = str(tmp / "data"), subprocess_env(drop_jax_settings=True)
    # the reference run first: it also builds the dataset the distributed processes then share
    ref = subprocess.run([sys.executable, WORKER, "reference", str(tmp / "ref"), data_dir, str(tmp / "ref")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    reports = run_distributed(tmp / "dist", data_dir, tmp / "dist", env)
    return tmp, data_dir, env, reports


def test_two_process_training_matches_one_process_and_reads_disjoint_splits(runs):
    tmp_path, _, _, reports = runs
    assert [r["process_count"] for r in reports] == [2, 2] and [r["global_devices"] for r in reports] == [4, 4]
    assert [r["step"] for r in reports] == [6, 6]
    ids0, ids1 = set(reports[0]["ids"]), set(reports[1]["ids"])
    assert ids0 and ids1 and not ids0 & ids1 and len(ids0 | ids1) == 16  # disjoint, together the whole split
    # the preview ran on both processes (parameters sharded across them), process 0 wrote it
    assert sorted(p.name for p in (tmp_path / "dist").glob("sample_*.gif")) == ["sample_0000003.gif",
                                                                                 "sample_0000006.gif"]
    dist, single = np.load(tmp_path / "dist.npz"), np.load(tmp_path / "ref.npz")
    assert sorted(dist.files) == sorted(single.files)
    for name in single.files:  # same global batches, same steps: equal up to cross-process reduction order
        np.testing.assert_allclose(dist[name], single[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_a_sigterm_on_one_process_stops_both_at_one_step_and_the_resumed_run_ends_where_an_uninterrupted_one_does(
        runs):
    tmp_path, data_dir, env, _ = runs
    # before the fix both processes hung here: one in its checkpoint save, the other in its next step
    # process 1 is sent SIGTERM as it reads its 2nd batch: both stop after step 1 or 2. No previews in these runs
    # (SAMPLE_EVERY=0): the uninterrupted run's are checked above, and they do not touch the training state.
    stopped = run_distributed(tmp_path / "run", data_dir, tmp_path / "stopped", env, PREEMPT_AT="2",
                              SAMPLE_EVERY="0")
    steps = [r["step"] for r in stopped]
    assert steps[0] == steps[1] and 1 <= steps[0] < 6, steps
    saved = sorted(int(d.name) for d in (tmp_path / "run" / "checkpoints").iterdir() if d.name.isdigit())
    assert saved == [steps[0]]
    # resumed, each process continues from ITS OWN data position (the checkpoint holds both): the same 6 steps
    reports = run_distributed(tmp_path / "run", data_dir, tmp_path / "resumed", env, SAMPLE_EVERY="0")
    assert [r["step"] for r in reports] == [6, 6]
    resumed, uninterrupted = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "dist.npz")
    for name in uninterrupted.files:
        np.testing.assert_allclose(resumed[name], uninterrupted[name], rtol=1e-6, atol=1e-7, err_msg=name)


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
