"""Models: the StreamDiT velocity network, Wan2.1's DiT (arch "wan"), attention layers, text encoders and
configurations."""
from streamdit_jax.models.conditioned import ConditionedModel
from streamdit_jax.models.config import MODEL_CONFIGS, ModelConfig, TextEncoderConfig, get_model_config
from streamdit_jax.models.dit import StreamDiT
from streamdit_jax.models.factory import forward_flops  # by model.arch: StreamDiT's or Wan's count
from streamdit_jax.models.wan import WanTransformer

__all__ = ["MODEL_CONFIGS", "ModelConfig", "TextEncoderConfig", "get_model_config", "ConditionedModel", "StreamDiT",
           "forward_flops", "WanTransformer"]
