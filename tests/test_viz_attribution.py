"""viz.attribution_figures: an attribution map drawn over its image at the map's stride."""

from __future__ import annotations

import numpy as np
import pytest
from viz_cases import sample_image

from viz.attribution_figures import attribution_overlay_figure, infer_stride


def test_overlay_figure_draws_the_map_at_its_stride():
    image = sample_image(64, 64, seed=2)
    cam = np.arange(64, dtype=np.float32).reshape(8, 8)             # a stage-1 sized map (8 px cells)
    fig = attribution_overlay_figure(image, cam, "Grad-CAM", colorbar_title="cam")
    hm = next(t for t in fig.data if t.type == "heatmap")
    assert np.array_equal(np.asarray(hm.z), cam) and hm.dx == 8 and hm.x0 == 4
    assert hm.zmin == 0 and hm.zmax == 63 and fig.layout.title.text == "<b>Grad-CAM</b>"
    signed = attribution_overlay_figure(image, cam - 20, "IG", signed=True, side_by_side=True)
    hm = next(t for t in signed.data if t.type == "heatmap")
    assert hm.zmid == 0 and hm.zmin == -hm.zmax == -43
    assert sum(t.type == "image" for t in signed.data) == 2
    assert infer_stride((200, 264), (6, 8)) == 32 and infer_stride((202, 266), (6, 8)) == 32
    assert infer_stride((64, 64), (64, 64)) == 1
    with pytest.raises(ValueError):
        attribution_overlay_figure(image, np.zeros(5), "bad")
