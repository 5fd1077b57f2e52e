"""streamdit_jax: StreamDiT (real-time streaming text-to-video with buffered flow matching) in JAX/Flax NNX."""
from setuptools import find_packages, setup

setup(
    name="streamdit_jax",
    version="0.1.0",
    description="StreamDiT in JAX/Flax: buffered flow matching, streaming sampler, multistep distillation",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["streamdit_jax", "streamdit_jax.*", "experiments", "experiments.*"]),
    python_requires=">=3.11",
    # Ranges include jax 0.10.2 (newest for Python 3.11 here) and jax 0.11 (Python 3.12, the GPU machines).
    install_requires=[
        "jax>=0.10.2,<0.13",
        "flax>=0.12.8,<0.14",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.0,<0.13",
        "einops>=0.8,<0.9",
        "tensorflow-datasets>=4.9.10,<5",
        "absl-py>=2.1,<3",
        "chex>=0.1.90,<0.2",
        "ml-collections>=1.0,<2",
        "grain>=0.2.18,<0.3",
        "numpy>=2.0,<3",
        "imageio>=2.37,<3",
        "imageio-ffmpeg>=0.6,<1",
        "tqdm>=4.66,<5",
        "tensorboardX>=2.6,<3",
    ],
    extras_require={"test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4"]},
)
