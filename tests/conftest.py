"""Test set-up: 8 fake CPU devices (meshes up to 2x2x2) and JAX's persistent compilation cache.

Both must be configured before jax is imported anywhere, hence at conftest import time.
"""
import os

# The suite compiles hundreds of small programs and runs each only a few times: XLA:CPU's cheapest backend level
# takes about half the compile time off (tests/test_train_loop.py's resume test: 81 s -> 60 s from a cold cache).
# Numerics are unchanged in kind (the same HLO; only LLVM's optimisation of the kernels differs).
FAST_COMPILE = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), FAST_COMPILE,
                                    "--xla_force_host_platform_device_count=8"]).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_CACHE = os.environ.get("JAX_COMPILATION_CACHE_DIR",
                        os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache"))

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_configure(config):
    # `make test` runs every test; `make test-fast` (-m "not slow") leaves out the multi-process runs and the tests
    # that start a command-line tool in a child process.
    config.addinivalue_line("markers", "slow: multi-process or command-line (subprocess) test; still part of `make test`")
    # The CLI tests run the tools with subprocess (fork + exec of a fresh Python), and JAX, already running in this
    # process, warns at every fork. The child never runs this process's JAX, so the deadlock it warns of cannot
    # happen; the tools' own output is checked for the warning where they fork themselves (the demo test).
    config.addinivalue_line("filterwarnings", r"ignore:os\.fork\(\) was called:RuntimeWarning")


@pytest.fixture(scope="module")
def torch():
    """PyTorch with diffusers, the reference of the Wan parity tests (skipped without them: the test extra)."""
    torch = pytest.importorskip("torch", reason="PyTorch reference: pip install -e '.[test]' (torch, diffusers)")
    pytest.importorskip("diffusers", reason="diffusers reference: pip install -e '.[test]'")
    torch.set_num_threads(2)
    return torch
