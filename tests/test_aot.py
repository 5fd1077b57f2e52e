"""streamdit_jax.aot (what experiments.aot_compile runs): the Wan train step with precomputed text on an
fsdp x context mesh and the buffer step lower and compile from abstract inputs alone, and report memory and FLOPs."""
import jax
import pytest

from streamdit_jax import aot, parallel
from streamdit_jax.models import get_model_config
from streamdit_jax.models.config import TextEncoderConfig

LATENT = (4, 4, 6)  # 4 latent frames (the context axis of 2 splits them) of 4 x 6
WAN = get_model_config("wan_tiny", attend_text_padding=True, attention_impl="chunked:8",
                       text=TextEncoderConfig(kind="t5", path="/nowhere/umt5", width=32, max_len=16))


def test_the_wan_train_step_compiles_on_an_fsdp_by_context_mesh_from_abstract_inputs():
    mesh = parallel.make_mesh(parallel.MeshConfig.parse("fsdp:2,context:2"), jax.devices()[:4])
    cfg = aot.train_config(WAN, LATENT, 4)
    batch = aot.train_batch(cfg, LATENT)
    # a frozen encoder's states come precomputed (nothing is read from its path), with the null prompt's row
    assert sorted(batch) == ["latents", "null_text", "null_text_mask", "text", "text_mask"]
    assert batch["text"].shape == (4, 16, 32) and batch["latents"].shape == (4, *LATENT, 4)
    lowered, analytic = aot.lower_train_step(WAN, mesh, LATENT, 4)
    report = aot.compile_report(lowered)
    assert report.total_bytes > 0 and report.argument_bytes > 0 and analytic > 0


def test_the_buffer_step_compiles_on_one_device_and_bad_sizes_are_named():
    mesh = parallel.make_mesh(parallel.MeshConfig.parse("data:1"), jax.devices()[:1])
    lowered, analytic = aot.lower_buffer_step(WAN, mesh, LATENT, chunk=2)
    assert aot.compile_report(lowered).total_bytes > 0 and analytic > 0
    assert aot.parse_latent("16x60x104") == (16, 60, 104)
    with pytest.raises(ValueError, match="latent size '16x60' must be FxHxW"):
        aot.parse_latent("16x60")
    with pytest.raises(ValueError, match="mesh 'fsdp=4' must be name:size"):
        parallel.MeshConfig.parse("fsdp=4")
    assert aot.chunk_sizes(16) == (1, 2, 4, 8, 16) and aot.chunk_sizes(6) == (1, 2, 6)
