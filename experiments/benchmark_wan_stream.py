r"""End-to-end streaming speed of a Wan2.1 DiT + the Wan VAE decoder: video frames per second and time to first
frame, beside Self Forcing (17 FPS, 0.69 s) and LongLive (20.7 FPS), both on one H100.

  python -m experiments.benchmark_wan_stream                       # on a GPU: Wan2.1-1.3B, 480x832, bf16, cuDNN
  python -m experiments.benchmark_wan_stream --model=wan_tiny --size=32x32 --vae=tiny --chunks=3 --output=''
                                                                   # CPU self-check at toy size (seconds)

Random weights unless --checkpoint (a training workdir or export of this library, e.g. experiments.import_weights'
Wan2.1 import) and --vae=DIR (a diffusers Wan VAE folder): speed does not depend on them. The buffer step runs the
partition K=0, c=--chunk, s=--steps_per_chunk (the paper's distilled setting: c=2, s=1: one DiT call per 2 latent
frames = 8 video frames), no guidance unless --guidance > 0 (then both branches in one batch). Timing:
``streamdit_jax.sampling.stream_timing``: the stream start (T2V fill of the buffer), the buffer step and the VAE's
decode_chunk (to uint8 on device, then copied to the host) compiled ahead of time (compile times reported, not in the
FPS), then --chunks chunks streamed. A row is appended to BENCHMARKS.md unless --output=''.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from absl import app, flags

from experiments import benchmarking
from streamdit_jax.models import get_model_config, wan_vae
from streamdit_jax.models.factory import abstract_model, create_model
from streamdit_jax.partition import Partition
from streamdit_jax.sampling.buffer import model_denoise_fn
from streamdit_jax.sampling.stream_timing import host_random, time_decoded_stream

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "wan2.1_1.3b", "Model preset (random weights) unless --checkpoint.")
flags.DEFINE_string("checkpoint", "", "A training workdir or export to load the DiT from (its model config).")
flags.DEFINE_string("size", "480x832", "Video frame size HxW (a multiple of 8 x the patch: 16 for Wan).")
flags.DEFINE_string("vae", "wan21", "wan21: Wan2.1's VAE, random weights | tiny: a toy VAE with the model's latent "
                    "channels (CPU self-check) | a diffusers Wan VAE directory.")
flags.DEFINE_enum("dtype", "bfloat16", ["float32", "bfloat16"], "Compute and parameter dtype (DiT and VAE).")
flags.DEFINE_string("attention_impl", "auto", "auto: cudnn on GPU, chunked elsewhere | xla | cudnn | chunked[:N].")
flags.DEFINE_integer("buffer_len", 16, "Buffer length B in latent frames.")
flags.DEFINE_integer("chunk", 2, "Chunk size c (latent frames per macro step).")
flags.DEFINE_integer("steps_per_chunk", 1, "Micro steps s per macro step.")
flags.DEFINE_float("guidance", 0.0, "Classifier-free guidance scale; 0 = none (a distilled model).")
flags.DEFINE_integer("chunks", 20, "Chunks streamed (the first, then steady ones).")
flags.DEFINE_string("output", "BENCHMARKS.md", "Markdown file to append to ('' = print only).")

REFERENCES = [["Self Forcing (Huang et al., 2025; reported)", "1x H100", "Wan2.1-1.3B", "480x832", "-", "-", "-",
               "-", 17.0, "-", 0.69, "-", "-", "-"],
              ["LongLive (Yang et al., 2025; reported)", "1x H100", "Wan2.1-1.3B", "480x832", "-", "-", "-", "-", 20.7,
               "-", "-", "-", "-", "-"]]


def tiny_vae(channels: int) -> wan_vae.WanVAEConfig:
    """A toy Wan VAE (8x spatial, 4x temporal as Wan2.1's) with ``channels`` latent channels."""
    return wan_vae.WanVAEConfig(base_dim=8, z_dim=channels, dim_mult=(1, 2, 2, 2), num_res_blocks=1,
                                latents_mean=(0.0,) * channels, latents_std=(1.0,) * channels)


def load_dit(impl: str):
    """(model config, graphdef, params) in --dtype with attention ``impl``: random, or --checkpoint's weights."""
    kw = dict(dtype=FLAGS.dtype, param_dtype=FLAGS.dtype, remat=False, attention_impl=impl)
    if not FLAGS.checkpoint:
        cfg = get_model_config(FLAGS.model, **kw)
        return (cfg,) + create_model(cfg, seed=0)
    from streamdit_jax.restore import load_for_inference
    config, _, params = load_for_inference(FLAGS.checkpoint)
    cfg = config.model.replace(**kw)
    cast = lambda x: x.astype(cfg.params_dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
    return cfg, abstract_model(cfg)[0], jax.tree.map(cast, params)


def load_vae(channels: int):
    """--vae's decoder in --dtype: a folder's weights, or random ones drawn on the host (``host_random``)."""
    dtype = jnp.dtype(FLAGS.dtype)
    if FLAGS.vae not in ("wan21", "tiny"):
        return wan_vae.load_wan_vae(FLAGS.vae, dtype=dtype)
    config = wan_vae.WAN21_VAE if FLAGS.vae == "wan21" else tiny_vae(channels)
    graphdef, abstract = wan_vae.abstract_wan_vae(config, dtype)
    return wan_vae.WanVideoAutoencoder(config, graphdef, host_random(abstract, seed=0))


def main(argv):
    del argv
    gpu = jax.devices()[0].platform == "gpu"
    impl = FLAGS.attention_impl if FLAGS.attention_impl != "auto" else ("cudnn" if gpu else "chunked")
    cfg, graphdef, params = load_dit(None if impl == "xla" else impl)
    ae = load_vae(cfg.latent_channels)
    h, w = (int(v) for v in FLAGS.size.lower().split("x"))
    f = ae.config.spatial_factor
    if h % f or w % f:
        raise app.UsageError(f"--size={FLAGS.size}: height and width must be multiples of the VAE's {f}x")
    latent_shape = (1, FLAGS.buffer_len, h // f, w // f, cfg.latent_channels)
    cfg.token_grid(latent_shape[1:])  # ValueError naming the size unless the patch tiles it
    partition = Partition.from_buffer(FLAGS.buffer_len, FLAGS.chunk, FLAGS.steps_per_chunk)
    text = jnp.zeros((1, cfg.text.max_len, cfg.text.width), cfg.compute_dtype)  # speed does not depend on it
    cond = (text, jnp.ones((1, cfg.text.max_len), jnp.int32))
    null = jax.tree.map(jnp.zeros_like, cond) if FLAGS.guidance > 0 else None
    print(f"{benchmarking.machine()}\n{FLAGS.checkpoint or FLAGS.model}: latent buffer {latent_shape}, {partition}, "
          f"attention {impl}", flush=True)
    t = time_decoded_stream(model_denoise_fn(graphdef), params, partition, cond, latent_shape, ae, FLAGS.chunks,
                            null_cond=null, guidance_scale=FLAGS.guidance or 1.0)
    print(f"RESULT fps={t.fps:.4g} mean_fps={t.mean_fps:.4g} ttff_s={t.ttff_s:.4g} "
          f"ttff_from_step_s={t.ttff_from_step_s:.4g} ttff_with_compile_s={t.ttff_with_compile_s:.4g} "
          f"dit_ms={t.dit_ms:.4g} vae_ms={t.decode_ms:.4g} start_s={t.start_s:.4g}", flush=True)
    header = ["method", "device", "model", "video", "dtype / attention", "partition", "DiT ms/step",
              "VAE ms/chunk", "steady video FPS", "mean FPS", "TTFF s", "TTFF s from 1st step",
              "TTFF s incl. compile", "peak GiB"]
    device = f"{jax.device_count()}x {jax.devices()[0].device_kind}"
    peak = f"{t.peak_bytes / 2**30:.1f}" if t.peak_bytes else "-"
    row = ["StreamDiT buffer step + Wan VAE (ours)", device, FLAGS.checkpoint or FLAGS.model, f"{h}x{w}",
           f"{FLAGS.dtype} / {impl}", f"c={partition.c} s={partition.s} N={partition.N}"
           + (f" CFG {FLAGS.guidance}" if null else ""), t.dit_ms, t.decode_ms, t.fps, t.mean_fps, t.ttff_s,
           t.ttff_from_step_s, t.ttff_with_compile_s, peak]
    table = benchmarking.markdown_table(header, [row] + REFERENCES)
    print(table)
    compiles = ", ".join(f"{k} {v:.1f} s" for k, v in t.compile_s.items())
    weights = f"DiT {FLAGS.checkpoint}" if FLAGS.checkpoint else "random weights (speed does not depend on them)"
    notes = (f"Ours: {weights}, VAE {FLAGS.vae}, {FLAGS.chunks} chunks; "
             f"a chunk = {partition.c} latent frames = {t.frames_per_chunk} video frames (the first "
             f"{t.first_frames}). Steady FPS = frames per chunk / median (buffer step + decode + host copy); TTFF = "
             f"stream start (T2V fill of the buffer: {partition.T} DiT calls, {t.start_s:.3g} s) + first buffer step "
             f"+ first decode to uint8 frames on the host; 'from 1st step' leaves the stream start out; 'incl. "
             f"compile' adds compiling start, step and first decode. Compile: {compiles}. References: the papers' "
             f"figures (chunk-wise autoregressive Wan2.1-1.3B, 1x H100), not run here.")
    print(notes)
    if FLAGS.output:
        benchmarking.append_benchmark(FLAGS.output, "Wan2.1 stream: DiT buffer step + VAE decode "
                                      "(benchmark_wan_stream)", table, notes)


if __name__ == "__main__":
    app.run(main)
