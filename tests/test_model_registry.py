"""Every registered model, the diffusers habit: built in tiny mode from the registry alone,
it makes a clip of the asked shape, deterministically for a seed (a model with one motion
module per step count is built for its one-step module)."""
from __future__ import annotations

import numpy as np
import pytest

import models


@pytest.mark.parametrize("name", models.available())
def test_every_registered_model_builds_tiny_and_makes_a_clip(name, cache_dir):
    for steps in (1,):
        model = models.build(name, weights="tiny", device="cpu", cache_dir=str(cache_dir), nfe=steps)
        clip = model.generate(["a person riding a horse"], [11], steps, num_frames=4, height=64, width=64)
        assert clip.shape == (1, 4, 64, 64, 3) and clip.dtype == np.uint8
        assert clip.std() > 0   # not a blank frame
        again = model.generate(["a person riding a horse"], [11], steps, num_frames=4, height=64, width=64)
        assert np.array_equal(clip, again)   # the seed fixes the clip
        assert model.spec.name == name and model.describe()["weights_mode"] == "tiny"
