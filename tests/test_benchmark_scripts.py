"""The Wan stream benchmark at toy size: the timing library (in process) and the command line's printed result
(experiments.benchmark_wan_stream, the GPU script's CPU self-check)."""
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import subprocess_env

from streamdit_jax.models import get_model_config
from streamdit_jax.models.factory import create_model
from streamdit_jax.models.wan_vae import WanVAEConfig, WanVideoAutoencoder, abstract_wan_vae
from streamdit_jax.partition import Partition
from streamdit_jax.sampling.buffer import model_denoise_fn
from streamdit_jax.pixels import float_to_uint8 as to_uint8
from streamdit_jax.sampling.stream_timing import host_random, time_decoded_stream

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_timed_stream_decodes_the_wan_chunk_frame_counts_and_reports_positive_times():
    cfg = get_model_config("wan_tiny", attention_impl="chunked:16")
    graphdef, params = create_model(cfg, seed=0)
    vae_cfg = WanVAEConfig(base_dim=4, z_dim=4, dim_mult=(1, 1, 1, 1), num_res_blocks=1, latents_mean=(0.0,) * 4,
                           latents_std=(1.0,) * 4)
    vae_graphdef, abstract = abstract_wan_vae(vae_cfg)
    vae = WanVideoAutoencoder(vae_cfg, vae_graphdef, host_random(abstract))
    partition = Partition.from_buffer(4, 2, 1)
    cond = (jnp.zeros((1, cfg.text.max_len, cfg.text.width)), jnp.ones((1, cfg.text.max_len), jnp.int32))
    t = time_decoded_stream(model_denoise_fn(graphdef), params, partition, cond, (1, 4, 2, 2, 4), vae, chunks=3)
    assert (t.first_frames, t.frames_per_chunk) == (5, 8)  # Wan's causal VAE: 1 + 4 (c - 1) first, then 4 c
    assert len(t.dit_s) == len(t.decode_s) == 2
    assert set(t.compile_s) == {"start", "step", "decode_first", "decode"} and min(t.compile_s.values()) > 0
    assert 0 < t.ttff_from_step_s < t.ttff_s < t.ttff_with_compile_s
    assert t.fps == pytest.approx(8 / (t.chunk_ms / 1e3)) and t.fps > 0 and t.mean_fps > 0
    with pytest.raises(ValueError, match="chunks=1"):
        time_decoded_stream(model_denoise_fn(graphdef), params, partition, cond, (1, 4, 2, 2, 4), vae, chunks=1)


def test_host_random_draws_every_leaf_with_unit_gains():
    from flax import nnx

    abstract = nnx.eval_shape(lambda: nnx.RMSNorm(6, rngs=nnx.Rngs(0)))
    abstract = {"norm": nnx.state(abstract), "w": jax.ShapeDtypeStruct((3, 4), jnp.bfloat16)}
    values = host_random(abstract, seed=1)
    np.testing.assert_array_equal(values["norm"]["scale"][...], np.ones(6))
    assert values["w"].dtype == jnp.bfloat16 and 0 < float(jnp.std(values["w"].astype(jnp.float32))) < 0.1


def test_to_uint8_rounds_and_clips_like_the_host_conversion():
    from streamdit_jax.pixels import float_to_frames

    x = np.linspace(-1.3, 1.3, 101, dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(to_uint8(jnp.asarray(x))), float_to_frames(x))


@pytest.mark.slow
def test_the_wan_stream_benchmark_prints_positive_fps_and_ttff_at_toy_size():
    env = subprocess_env()
    env.setdefault("JAX_COMPILATION_CACHE_DIR", jax.config.jax_compilation_cache_dir or "")  # conftest's cache
    env.update(JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    proc = subprocess.run([sys.executable, "-m", "experiments.benchmark_wan_stream", "--model=wan_tiny",
                           "--size=32x32", "--vae=tiny", "--chunks=3", "--output="], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    fields = dict(re.findall(r"(\w+)=(\S+)", line))
    for key in ("fps", "mean_fps", "ttff_s", "ttff_from_step_s", "ttff_with_compile_s", "dit_ms", "vae_ms"):
        assert float(fields[key]) > 0, (key, line)
    assert "| StreamDiT buffer step + Wan VAE (ours) |" in proc.stdout and "| Self Forcing" in proc.stdout
