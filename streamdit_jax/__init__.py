"""streamdit_jax: StreamDiT (real-time streaming text-to-video with buffered flow matching) in JAX/Flax NNX."""
__version__ = "0.1.0"
