"""crossformer.schemes: visible keys, pair counts and reach of ViT / Swin / PVT / CrossFormer attention."""

from __future__ import annotations

import numpy as np
import pytest

from crossformer import schemes as S

# token grids of stage 0 (input = 4× these), square, padded and non-square
TOKEN_SIZES = [(56, 56), (50, 66), (13, 20)]


@pytest.fixture(scope="module")
def models():
    import crossformer
    return {name: crossformer.create_model(name) for name in ("crossformer_s", "crossformer_pp_s")}


def layout_mask(layout, token) -> np.ndarray:
    """``(H, W)`` bool: the real members of the group holding ``token``, read off the model's layout."""
    H, W = layout.feature_hw
    g = int(layout.slot_of_token[token[0] * W + token[1]]) // layout.group_tokens
    m = np.zeros(H * W, dtype=bool)
    real = layout.members[g][layout.members[g] >= 0]
    m[real] = True
    return m.reshape(H, W)


@pytest.mark.parametrize("name", ["crossformer_s", "crossformer_pp_s"])
@pytest.mark.parametrize("tokens", TOKEN_SIZES, ids=lambda t: f"{t[0]}x{t[1]}")
def test_sda_lda_visible_keys_are_the_models_groups(models, name, tokens):
    model = models[name]
    plan = model.plan((4 * tokens[0], 4 * tokens[1]))
    rng = np.random.default_rng(0)
    checked = set()
    for stage, layouts in enumerate(plan):
        G, interval = model.cfg.group_size[stage], model.cfg.stage_interval(stage)
        for layout in layouts:
            H, W = layout.feature_hw
            queries = {(0, 0), (H - 1, W - 1), (H // 2, W // 2), (0, W - 1)}
            queries |= {(int(rng.integers(H)), int(rng.integers(W))) for _ in range(4)}
            for q in queries:
                got = S.visible_keys(layout.configured_kind, (H, W), q, group_size=G, interval=interval)
                np.testing.assert_array_equal(got, layout_mask(layout, q), err_msg=f"{name} {layout.describe()} {q}")
            checked.add(layout.configured_kind)
    assert checked == {"sda", "lda"}


def test_full_and_pvt_see_everything():
    for hw in TOKEN_SIZES:
        assert S.visible_keys("full", hw, (0, 0)).all()
        assert S.visible_keys("pvt", hw, (hw[0] - 1, 3), reduction=8).all()


def test_swin_unshifted_is_its_window():
    got = S.visible_keys("swin", (14, 21), (8, 15), window=7)
    want = np.zeros((14, 21), dtype=bool)
    want[7:14, 14:21] = True
    np.testing.assert_array_equal(got, want)
    # padded: 10×10 map, M=4 → padded 12×12; the last window holds only the real 2×2 corner
    got = S.visible_keys("swin", (10, 10), (9, 9), window=4)
    assert got.sum() == 4 and got[8:, 8:].all()


def test_swin_shifted_corner_sees_only_its_region():
    # 8×8, M=4, shift 2: after the roll, token (7,7) sits at (5,5) in window (1,1), region (1,1) of the
    # official mask (rows/cols 4–5 of the rolled map) = original rows/cols 6–7.
    want = np.zeros((8, 8), dtype=bool)
    want[6:, 6:] = True
    np.testing.assert_array_equal(S.visible_keys("swin_shifted", (8, 8), (7, 7), window=4), want)
    want = np.zeros((8, 8), dtype=bool)
    want[:2, :2] = True                                # (0,0) → rolled (6,6): region (2,2), rows 6–7 = 0–1
    np.testing.assert_array_equal(S.visible_keys("swin_shifted", (8, 8), (0, 0), window=4), want)
    want = np.zeros((8, 8), dtype=bool)
    want[2:6, 2:6] = True                              # an interior token: a full window, offset by 2
    np.testing.assert_array_equal(S.visible_keys("swin_shifted", (8, 8), (3, 3), window=4), want)
    # min(H, W) ≤ M: the official rule uses M = min(H, W) = 5 and no shift; 5×9 pads to 5×10 → two
    # windows, the right one holds real columns 5–8
    got = S.visible_keys("swin_shifted", (5, 9), (4, 8), window=7)
    np.testing.assert_array_equal(got, S.visible_keys("swin", (5, 9), (4, 8), window=7))
    assert got.sum() == 20 and got[:, 5:].all()


def test_pair_counts_by_hand():
    assert S.pair_count("full", (56, 56)) == 3136 ** 2
    assert S.pair_count("sda", (56, 56), group_size=7) == 64 * 49 ** 2        # 64 windows of 49
    assert S.pair_count("lda", (56, 56), group_size=7, interval=8) == 64 * 49 ** 2
    assert S.pair_count("lda", (56, 56), group_size=7, interval=None) == 3136 * 49
    assert S.pair_count("sda", (50, 66), group_size=7) == 56 * 70 * 49        # padded to 56×70
    assert S.pair_count("lda", (50, 66), group_size=7, interval=8) == 56 * 112 * 49   # G·I = 56
    assert S.pair_count("lda", (13, 20), group_size=4, interval=4) == 16 * 32 * 16
    assert S.pair_count("sda", (5, 6), group_size=7) == 36 * 36                # one global group, side 6
    assert S.pair_count("swin", (56, 56), window=7) == 3136 * 49
    assert S.pair_count("swin_shifted", (50, 66), window=7) == 56 * 70 * 49
    assert S.pair_count("pvt", (56, 56), reduction=8) == 3136 * 49
    assert S.pair_count("pvt", (50, 66), reduction=8) == 3300 * 7 * 9
    assert S.pair_count("pvt", (7, 7), reduction=1) == 49 * 49
    # 448 px, stage 0 (112×112): the numbers of the page's example sentence
    assert S.pair_count("full", (112, 112)) == 157_351_936
    assert (S.pair_count("sda", (112, 112), group_size=7)
            + S.pair_count("lda", (112, 112), group_size=7, interval=None)) == 1_229_312


def test_reach_of_one_full_block_is_everything():
    for hw in TOKEN_SIZES:
        assert S.reach([("full", {})], hw, (1, 2)).all()
        assert S.reach([("pvt", {"reduction": 8})], hw, (0, 0)).all()


def test_reach_sda_then_lda():
    # 56×56, G=7, I=8: the query's LDA group has 7×7 members 8 apart, so each falls in a different SDA
    # window row and column: 7 of the 8 window rows × 7 of the 8 columns = 49 windows of 49 tokens.
    blocks = [("sda", {"group_size": 7}), ("lda", {"group_size": 7, "interval": 8})]
    for q in [(0, 0), (20, 30), (55, 55)]:
        assert S.reach(blocks, (56, 56), q).sum() == 49 * 49
        assert S.reach(blocks[::-1], (56, 56), q).sum() == 49 * 49
    # v1 LDA at 448 px (112×112, I = 16): again 7×7 windows
    v1 = [("sda", {"group_size": 7}), ("lda", {"group_size": 7, "interval": None})]
    assert S.reach(v1, (112, 112), (50, 60)).sum() == 2401
    # two rounds of SDA + LDA at 56×56 reach everything
    assert S.reach(blocks * 2, (56, 56), (3, 4)).all()


def test_reach_swin_pair():
    blocks = [("swin", {"window": 7}), ("swin_shifted", {"window": 7})]
    # interior: the shifted window straddles 2×2 regular windows → 14×14
    assert S.reach(blocks, (56, 56), (28, 28)).sum() == 196
    # corner (0,0): its shifted region is rows/cols 0–2, inside regular window (0,0) → 49
    assert S.reach(blocks, (56, 56), (0, 0)).sum() == 49
    # the reach is monotone in the number of blocks
    r1, r2, r4 = (S.reach(S.stack(S.architectures(S.Settings())["Swin"], d), (56, 56), (20, 20)).sum()
                  for d in (1, 2, 4))
    assert r1 == 49 and r1 <= r2 <= r4


def test_reach_matches_brute_force_composition():
    rng = np.random.default_rng(1)
    hw = (13, 20)
    blocks = [("swin", {"window": 4}), ("lda", {"group_size": 4, "interval": 2}),
              ("swin_shifted", {"window": 4}), ("sda", {"group_size": 5})]
    L = hw[0] * hw[1]
    adj = [np.stack([S.visible_keys(s, hw, divmod(t, hw[1]), **p).ravel() for t in range(L)]) for s, p in blocks]
    total = np.eye(L, dtype=bool)
    for a in adj:                         # reach_k = A_k ∘ reach_{k-1}: row t of A_k · reach_{k-1}
        total = (a.astype(int) @ total.astype(int)) > 0
    for t in rng.choice(L, 6, replace=False):
        q = divmod(int(t), hw[1])
        np.testing.assert_array_equal(S.reach(blocks, hw, q).ravel(), total[t])


def test_settings_and_cost_curves():
    st = S.Settings.for_stage(2)
    assert (st.pvt_reduction, st.pp_group, st.pp_interval) == (2, 14, 1)
    labels = [p.label for p in S.panel_specs(S.Settings())]
    assert len(labels) == 8 and len(set(labels)) == 8
    curves = S.cost_curves([64, 448, 1024], S.Settings())
    assert curves["ViT (full)"][1] == 157_351_936
    full, sda = curves["ViT (full)"], curves["CrossFormer SDA (G=7)"]
    assert full[2] / full[0] == pytest.approx((1024 / 64) ** 4)       # quadratic in tokens
    assert (sda[0], sda[2]) == (21 * 21 * 49, 259 * 259 * 49)        # linear: padded tokens × G²
    with pytest.raises(ValueError):
        S.visible_keys("nope", (4, 4), (0, 0))
    with pytest.raises(ValueError):
        S.visible_keys("full", (4, 4), (4, 0))


def test_pvt_reduction_per_stage_is_the_papers():
    """PVT's spatial-reduction ratio is 8, 4, 2, 1 (Wang et al. 2021, every variant): the last stage
    (stage 3, a 7×7 map at 224 px) has no reduction, so PVT attention there is plain full attention
    (issue 28, mutation audit: stage 3 was never pinned)."""
    assert [S.Settings.for_stage(s).pvt_reduction for s in range(4)] == [8, 4, 2, 1]
    assert S.Settings.for_stage(7).pvt_reduction == 1               # later stages clamp to the last
    last = S.Settings.for_stage(3)
    assert S.pair_count("pvt", (7, 7), reduction=last.pvt_reduction) == S.pair_count("full", (7, 7)) == 49 * 49
    pvt = next(p for p in S.panel_specs(last) if p.scheme == "pvt")
    assert pvt.params == {"reduction": 1} and "R=1" in pvt.label


def test_reach_grid_holds_each_architecture_and_depth_with_its_count():
    archs = S.architectures(S.Settings())
    grid = S.reach_grid(archs, (1, 2, 4), (56, 56), (20, 20))
    assert grid.architectures == tuple(archs) and grid.depths == (1, 2, 4)
    assert grid.counts.shape == (len(archs), 3) and grid.counts.dtype == np.int64
    for a, (name, cycle) in enumerate(archs.items()):
        for d, depth in enumerate(grid.depths):
            mask = S.reach(S.stack(cycle, depth), (56, 56), (20, 20))
            assert np.array_equal(grid.masks[a][d], mask)
            assert grid.counts[a, d] == grid.count(name, depth) == mask.sum()
    assert grid.count("ViT", 1) == 56 * 56 and grid.count("CrossFormer", 2) == 49 * 49   # SDA then LDA: G² groups of G²
    assert grid.count("Swin", 1) == 49


def test_reach_figure_titles_state_the_counts():
    from viz.schemes_figures import reach_figure

    archs = S.architectures(S.Settings())
    grid = S.reach_grid(archs, (1, 2), (13, 20), (3, 4))
    fig = reach_figure(grid.masks, grid.counts, grid.architectures, grid.depths, (3, 4))
    titles = [a.text for a in fig.layout.annotations][: len(archs) * 2]
    assert titles[0] == f"ViT · 1 block: {13 * 20:,}/{13 * 20:,}"
    assert titles[3] == f"Swin · 2 blocks: {grid.count('Swin', 2):,}/{13 * 20:,}"


def test_equal_area_side_is_the_square_of_the_same_area():
    assert S.equal_area_side((224, 224)) == 224
    assert S.equal_area_side((200, 264)) == 230                      # √52800 = 229.8
    assert S.equal_area_side((1, 2)) == 1
