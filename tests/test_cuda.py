"""What only a GPU can show: the CUDA paths of sampling, the data stream and training (``make gpu-check``).

Skipped without a CUDA device; ``pytest -m cuda`` runs exactly these.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from tests.conftest import fast_config

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
CUDA = torch.device("cuda")


def test_half_precision_sampling_on_cuda_stays_close_to_fp32():
    from spasemsr.data.images import read_image
    from spasemsr.data.resize import bicubic_down
    from spasemsr.data.samples import sample_paths
    from spasemsr.weights.exports import load_pipeline

    pipeline = load_pipeline("weights/tiny/spasemsr", CUDA)
    hr = read_image(sample_paths("kodak5")[0])[None, :, :128, :128].to(CUDA)
    lr = bicubic_down(hr, 4)
    knobs = replace(pipeline.sampler, steps=4)
    outputs = {}
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        pipeline.precision = dtype
        outputs[dtype] = pipeline(lr, torch.Generator(CUDA).manual_seed(0), knobs)
    for dtype in (torch.float16, torch.bfloat16):
        sr = outputs[dtype]
        assert sr.dtype == torch.float32 and torch.isfinite(sr).all()
        psnr = -10 * torch.log10(((sr - outputs[torch.float32]) ** 2).mean())
        assert psnr > 30, (dtype, float(psnr))


def test_the_data_stream_draws_the_same_batch_on_cuda_twice(sr_cfg):
    from spasemsr.data.datamodule import SRDataModule

    hr = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(CUDA)
    batches = []
    for _ in range(2):
        datamodule = SRDataModule(sr_cfg.data, sr_cfg.degradation, sr_cfg.seed, degrade=True)
        batches.append(datamodule.on_after_batch_transfer({"hr": hr}, 0))
    assert batches[0]["lr"].device.type == "cuda" and torch.equal(batches[0]["lr"], batches[1]["lr"])
    assert torch.equal(torch.randn(3, generator=batches[0]["generator"], device=CUDA),
                       torch.randn(3, generator=batches[1]["generator"], device=CUDA))


@pytest.mark.parametrize("config", ["controlnet_sr.yaml", "spasemsr.yaml"])
def test_training_on_cuda_in_bf16_with_every_memory_option(config, prior_dir, tmp_path):
    from spasemsr.training.run import train

    extra = ("model.text.infer_describer=none", "model.drm=none") if config == "spasemsr.yaml" else ()
    cfg = fast_config(config, tmp_path, prior_dir, 4, "trainer=gpu", "trainer.gradient_checkpointing=true",
                      "trainer.frozen_dtype=bfloat16", "trainer.optimizer=adamw8bit", *extra)
    export = train(cfg)
    metrics = json.loads((export / "manifest.json").read_text())["final_metrics"]
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()), metrics
