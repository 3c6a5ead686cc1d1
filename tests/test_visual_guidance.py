"""Visual guidance: E_img/E_sem geometry and toggles, the frozen teachers, and the degradation constraints."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from skimage.data import chelsea
from torch import Tensor, nn

from spasemsr.diffusion.backbone import load_backbone, vae_downscale
from spasemsr.diffusion.latents import clean_latents
from spasemsr.guidance.visual.constraints import DISTANCES, constraint_losses
from spasemsr.guidance.visual.encoders import VisualGuidance
from spasemsr.guidance.visual.teachers import IMAGENET_MEAN, IMAGENET_STD, load_mobilenet_v2, load_teacher

SMALL = {"img_channels": 8, "sem_channels": 6, "width": 16, "depth": 1}


@pytest.fixture(scope="module")
def tiny_vae(prior_dir) -> AutoencoderKL:
    """The tiny profile's random VAE (x4), loaded the way every stage loads it."""
    return load_backbone(prior_dir).vae


@pytest.fixture(scope="module")
def mobilenet_teacher():
    return load_teacher("mobilenet_v2")


@pytest.fixture(scope="module")
def cat_hr() -> Tensor:
    """A fixed 64² HR crop of skimage's chelsea (a real image, so teacher features are meaningful)."""
    image = torch.from_numpy(chelsea()).permute(2, 0, 1)[None].float() / 255
    return image[..., 100:164, 180:244].contiguous()


def sd2_like_vae() -> AutoencoderKL:
    """A 4-block (x8) VAE: SD-2's geometry at toy width."""
    torch.manual_seed(0)
    blocks = 4
    return AutoencoderKL(
        down_block_types=["DownEncoderBlock2D"] * blocks, up_block_types=["UpDecoderBlock2D"] * blocks,
        block_out_channels=[8] * blocks, layers_per_block=1, latent_channels=4, norm_num_groups=8,
    )


def downscale(hr: Tensor) -> Tensor:
    return F.avg_pool2d(hr, 4)


@pytest.mark.parametrize("geometry", ["tiny", "sd2"])
@pytest.mark.parametrize("lr_hw", [(16, 16), (15, 17), (9, 13)])
def test_features_land_on_the_vae_latent_grid_of_the_hr(geometry, lr_hw, tiny_vae):
    vae = tiny_vae if geometry == "tiny" else sd2_like_vae()
    factor = vae_downscale(vae)
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 4 * lr_hw[0], 4 * lr_hw[1])
    latent_hw = tuple(clean_latents(vae, hr).shape[-2:])
    assert latent_hw == (4 * lr_hw[0] // factor, 4 * lr_hw[1] // factor)
    guidance = VisualGuidance(vae_factor=factor, **SMALL)
    c_img = guidance(downscale(hr), latent_hw)
    assert c_img.shape == (2, 8 + 6, *latent_hw)
    assert torch.isfinite(c_img).all()


@pytest.mark.parametrize(("use_img", "use_sem", "channels"), [(True, False, 8), (False, True, 6), (True, True, 14)])
def test_toggles_change_channels_and_parameters(use_img, use_sem, channels):
    guidance = VisualGuidance(use_img=use_img, use_sem=use_sem, teacher_channels=96, **SMALL)
    owners = {name.split(".")[0] for name, _ in guidance.named_parameters()}
    expected = ({"img", "vae_head"} if use_img else set()) | ({"sem", "sem_head"} if use_sem else set())
    assert guidance.out_channels == channels and guidance.enabled
    assert owners == expected
    assert guidance(torch.rand(1, 3, 8, 8), (4, 4)).shape == (1, channels, 4, 4)


def test_both_encoders_off_gives_no_guidance():
    guidance = VisualGuidance(use_img=False, use_sem=False, teacher_channels=96, **SMALL)
    assert guidance.out_channels == 0 and not guidance.enabled
    assert not list(guidance.parameters())
    assert guidance(torch.rand(1, 3, 8, 8), (4, 4)) is None


def test_mobilenet_weights_classify_a_cat_and_teacher_gives_stride16_features(mobilenet_teacher):
    image = torch.from_numpy(chelsea()).permute(2, 0, 1)[None].float() / 255
    image = F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        label = load_mobilenet_v2()((image - mean) / std).argmax(1).item()
    assert 281 <= label <= 285  # ImageNet's domestic cats (tabby … Egyptian cat)

    assert mobilenet_teacher.out_channels == 96
    assert mobilenet_teacher(torch.rand(2, 3, 128, 128)).shape == (2, 96, 8, 8)
    assert mobilenet_teacher(torch.rand(1, 3, 100, 70)).shape == (1, 96, 7, 5)
    assert not mobilenet_teacher.train().training
    assert not any(p.requires_grad for p in mobilenet_teacher.parameters())


def test_missing_teacher_weights_name_the_path_and_contents(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.pth does not exist; it should hold torchvision's ImageNet"):
        load_teacher("mobilenet_v2", str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match="is a folder; point teacher.path at the file"):
        load_teacher("mobilenet_v2", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="sam teacher needs teacher.path"):
        load_teacher("sam")
    with pytest.raises(FileNotFoundError, match=re.escape(f"in {tmp_path}, but config.json is missing")):
        load_teacher("sam", str(tmp_path))
    with pytest.raises(ValueError, match="unknown semantic teacher 'clip'; valid: \\['mobilenet_v2', 'none', 'sam'\\]"):
        load_teacher("clip")
    assert load_teacher("none") is None


@pytest.mark.parametrize("layout", ["vision_model", "full_sam"])
def test_sam_teacher_round_trips_through_save_pretrained(layout, tmp_path):
    from transformers import SamConfig, SamModel, SamVisionConfig, SamVisionModel

    torch.manual_seed(0)
    config = SamVisionConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64, image_size=64, patch_size=16,
        window_size=2, global_attn_indexes=[1], output_channels=16,
    )
    model = SamVisionModel(config) if layout == "vision_model" else SamModel(SamConfig(vision_config=config.to_dict()))
    model.save_pretrained(tmp_path)
    teacher = load_teacher("sam", str(tmp_path))
    assert teacher.out_channels == 16 and not any(p.requires_grad for p in teacher.parameters())

    square = torch.rand(2, 3, 32, 32)  # resized to 64², no padding: the teacher must match SAM called directly
    pixels = (F.interpolate(square, size=(64, 64), mode="bilinear") - teacher.mean) / teacher.std
    with torch.no_grad():
        direct = model.vision_encoder(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(teacher(square), direct)
    assert teacher(torch.rand(1, 3, 48, 32)).shape == (1, 16, 4, 3)  # 64×43 after resize → 4×3 cells of 16


def _losses(guidance, lr, hr, vae, teacher, distance="l1"):
    """The constraints as a training step computes them: E_img / E_sem once, the HR's clean latents."""
    latents = clean_latents(vae, hr) if vae is not None else None
    features = guidance.encode(lr, (hr.shape[-2] // guidance.vae_factor, hr.shape[-1] // guidance.vae_factor))
    return constraint_losses(guidance, features, latents, hr, teacher, distance)


def test_constraint_losses_are_finite_and_train_only_the_encoders_and_heads(prior_dir, cat_hr):
    torch.manual_seed(0)
    guidance = VisualGuidance(vae_factor=4, latent_channels=4, teacher_channels=96, **SMALL)
    vae = load_backbone(prior_dir).vae.requires_grad_(True)  # left trainable: the constraint itself must stop grads
    teacher = load_teacher("mobilenet_v2").requires_grad_(True)
    for distance in DISTANCES:
        losses = _losses(guidance, downscale(cat_hr), cat_hr, vae, teacher, distance)
        assert set(losses) == {"vae", "sem"} and all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in guidance.parameters())
    assert all(p.grad is None for p in (*vae.parameters(), *teacher.parameters()))


def test_constraint_terms_follow_encoders_heads_and_teacher(tiny_vae, mobilenet_teacher, cat_hr):
    lr = downscale(cat_hr)
    only_sem = VisualGuidance(use_img=False, vae_factor=4, teacher_channels=96, **SMALL)
    assert set(_losses(only_sem, lr, cat_hr, tiny_vae, mobilenet_teacher)) == {"sem"}
    no_teacher = VisualGuidance(vae_factor=4, teacher_channels=0, **SMALL)
    assert set(_losses(no_teacher, lr, cat_hr, tiny_vae, None)) == {"vae"}
    with pytest.raises(ValueError, match="unknown constraint distance 'huber'"):
        _losses(no_teacher, lr, cat_hr, tiny_vae, None, "huber")
    with pytest.raises(ValueError, match="vae_factor=8 .* build VisualGuidance with vae_factor=vae_downscale"):
        _losses(VisualGuidance(vae_factor=8, **SMALL), lr, cat_hr, tiny_vae, None)
    with pytest.raises(ValueError, match="teacher gives 96 channels but P_s projects to 7"):
        mismatched = VisualGuidance(vae_factor=4, teacher_channels=7, **SMALL)
        _losses(mismatched, lr, cat_hr, None, mobilenet_teacher)


class EchoVAE(nn.Module):
    """A stand-in VAE whose posterior mean is the guidance's own P_v(E_img(LR)) for HR = nearest-upsampled LR."""

    def __init__(self, guidance: VisualGuidance) -> None:
        super().__init__()
        self.guidance, self.config = guidance, SimpleNamespace(scaling_factor=0.5)

    def encode(self, pixels: Tensor) -> SimpleNamespace:
        lr = downscale((pixels + 1) / 2)
        mean = self.guidance.vae_head(self.guidance.img(lr, lr.shape[-2:])) / self.config.scaling_factor
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=mean))


class ConstantTeacher(nn.Module):
    """A stand-in teacher whose map (stride 16, like the real ones) is one constant."""

    def __init__(self, channels: int, value: float) -> None:
        super().__init__()
        self.out_channels, self.value = channels, value

    def forward(self, hr: Tensor) -> Tensor:
        return torch.full((hr.shape[0], self.out_channels, hr.shape[-2] // 16, hr.shape[-1] // 16), self.value)


@pytest.mark.parametrize("distance", sorted(DISTANCES))
def test_constraint_losses_vanish_when_prediction_equals_target(distance):
    torch.manual_seed(0)
    guidance = VisualGuidance(vae_factor=4, latent_channels=4, teacher_channels=5, **SMALL)
    nn.init.zeros_(guidance.sem_head.weight)
    nn.init.constant_(guidance.sem_head.bias, 0.3)  # P_s(E_sem(LR)) ≡ 0.3, on the latent grid
    lr = torch.rand(2, 3, 12, 20)
    hr = F.interpolate(lr, scale_factor=4, mode="nearest")
    losses = _losses(guidance, lr, hr, EchoVAE(guidance), ConstantTeacher(5, 0.3), distance)
    assert set(losses) == {"vae", "sem"}
    assert all(value.item() == pytest.approx(0, abs=1e-5) for value in losses.values())


def test_adamw_steps_lower_the_constraints(tiny_vae, mobilenet_teacher, cat_hr):
    torch.manual_seed(0)
    guidance = VisualGuidance(vae_factor=vae_downscale(tiny_vae), latent_channels=4, teacher_channels=96, **SMALL)
    optimiser = torch.optim.AdamW(guidance.parameters(), lr=1e-2)
    lr, history = downscale(cat_hr), []
    for _ in range(15):
        losses = _losses(guidance, lr, cat_hr, tiny_vae, mobilenet_teacher)
        optimiser.zero_grad()
        sum(losses.values()).backward()
        optimiser.step()
        history.append({name: value.item() for name, value in losses.items()})
    first, last = history[0], history[-1]
    assert last["vae"] < 0.5 * first["vae"] and last["sem"] < 0.9 * first["sem"], history
