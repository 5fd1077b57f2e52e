"""The base of the TFDS datasets derived record by record from a prepared frames dataset (``tfds_builders``): the
caption embeddings of ``caption_embeddings`` and the latents of ``latent_clips``.

Such a dataset holds, for a split of the frames dataset, one record per clip in the SAME order (index i of both is
one clip), computed by a frozen encoder; its config names the frames dataset and the encoder. ``DerivedDataset``
holds what every such builder shares: the version, the build inputs taken by the constructor, the DatasetInfo with
the clip's "id" and the check that building has its inputs. A subclass states its other features, its splits and its
own build arguments. The tfds name of a subclass is its class name in snake case ("latent_clips"); the base itself is
not registered.
"""
from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar, Optional

import numpy as np
import tensorflow_datasets as tfds

# Part of every prepared dataset's path (DATA_DIR/<tfds name>/<config name>/1.0.0/): another value would no longer
# find the datasets already written.
VERSION = "1.0.0"


class DerivedDataset(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A dataset derived record by record from a frames dataset by a frozen encoder. Reading needs only the config;
    building also ``frames_builder`` (prepared, in the same data_dir) and ``encoder`` (the function the subclass
    applies to the frames records). Every record has "id", int64: the clip's id (as in the frames dataset).

    A subclass states ``_features``, ``_split_generators`` and ``_generate_examples``, and as class keywords, for its
    error messages, ``config_function`` (the name of the function that makes its configs) and ``encoder`` (what its
    encoder is, in words): ``class LatentClips(DerivedDataset, config_function="latent_clips_config",
    encoder="an autoencoder")``. The DatasetInfo's description is the first line of the subclass's docstring."""

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {str(VERSION): "Initial release."}
    url_infos = None  # nothing to download (and tfds's lookup of a checksums file needs importlib_resources)
    CONFIG_FUNCTION: ClassVar[str] = ""
    ENCODER: ClassVar[str] = ""

    def __init_subclass__(cls, config_function: str = "", encoder: str = "", **kwargs):
        super().__init_subclass__(**kwargs)
        cls.CONFIG_FUNCTION = config_function or cls.CONFIG_FUNCTION
        cls.ENCODER = encoder or cls.ENCODER

    def __init__(self, *, frames_builder: Optional[tfds.core.DatasetBuilder] = None,
                 encoder: Optional[Callable[..., Any]] = None, show_progress: bool = True, **kwargs):
        super().__init__(**kwargs)
        self._frames_builder, self._encoder, self._show_progress = frames_builder, encoder, show_progress

    @abc.abstractmethod
    def _features(self, config: tfds.core.BuilderConfig) -> dict[str, tfds.features.FeatureConnector]:
        """The features of one record of the dataset of ``config``, besides "id"."""

    def _info(self) -> tfds.core.DatasetInfo:
        name = type(self).__name__
        if self.builder_config is None:
            raise ValueError(f"{name} needs a config: {name}(config={self.CONFIG_FUNCTION}(...))")
        features = {"id": tfds.features.Scalar(dtype=np.int64), **self._features(self.builder_config)}
        # shuffling disabled: the records are written in the frames dataset's order, so index i of both is one clip
        return tfds.core.DatasetInfo(builder=self, description=type(self).__doc__.split("\n")[0],
                                     features=tfds.features.FeaturesDict(features),
                                     disable_shuffling=True)

    def _check_build_inputs(self) -> None:
        """ValueError unless the builder was given what building needs (the frames dataset and the encoder)."""
        if self._frames_builder is None or self._encoder is None:
            raise ValueError(f"{type(self).__name__} is built by `build` (it needs the frames dataset and "
                             f"{self.ENCODER})")
