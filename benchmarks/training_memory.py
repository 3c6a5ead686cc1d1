"""Peak memory of one SpaSemSR training step at SD-2 shapes, with and without each memory option (issue #14).

    python -m benchmarks.training_memory [--crop 512] [--batches 1 2] [--step-cases gc]

SD-2-base-shaped modules with random weights (``benchmarks.models.sd2_training_parts``: UNet 866 M,
VAE 84 M, CLIP-H text tower 340 M, SAM ViT-B teacher; the ControlNet and the added guidance are built by
``SpaSemSRModule`` itself), 512² HR crops with the Real-ESRGAN degradation, the full loss (ε-MSE + L_vae +
L_sem), every component on. Each case runs in a fresh interpreter. Memory per option is read two ways:

- **accounted** (any machine, any size): exact bytes of the weights, the fp32 gradients of the trainable
  parameters, the optimiser state (AdamW: two fp32 moments; bitsandbytes 8-bit AdamW: two uint8 moments
  plus one fp32 absmax per 256-value block, fp32 below 4096 values), and the **activations kept for
  backward**, measured in a real forward by a ``saved_tensors_hooks`` pack hook that sums the distinct
  storages autograd saves (parameters excluded; autocast's half-precision copies of weights included) plus
  the block inputs gradient checkpointing holds. Their sum is what a GPU holds at the start of backward with
  last step's optimiser state, plus the gradients as they appear: an upper bound on the allocator's peak,
  without its fragmentation slack or kernels' transient workspaces. Activations are fitted as a fixed part
  (the weight copies) plus a part per image from two batch sizes; the largest batch that fits a 24 GiB card
  keeps ``HEADROOM`` of it free.
- **measured** (``--step-cases``): one real forward + backward + optimiser step; peak RSS on CPU, and
  ``torch.cuda.max_memory_allocated`` on CUDA, where it replaces the estimate.

Options: ``gc`` = ``trainer.gradient_checkpointing`` (UNet, ControlNet and the added attentions recompute in
backward); ``bf16`` = ``trainer.precision=bf16-mixed`` (autocast; fp32 master weights); ``frozen_bf16`` =
``trainer.frozen_dtype=bfloat16`` (the frozen UNet, VAE, text encoder and teacher stored in bf16, as
diffusers' ControlNet example does with ``weight_dtype``); ``8bit`` = ``trainer.optimizer=adamw8bit``.
``accumulate_grad_batches`` costs no memory per step: batch 1 with k accumulation steps is batch k's update.
Results are printed and written to ``benchmarks/results/training_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.common import (
    add_common_args,
    environment,
    peak_rss_mib,
    print_table,
    progress,
    run_child,
    setup,
    synchronize,
    write_json,
)

OPTION_OVERRIDES = {
    "gc": "trainer.gradient_checkpointing=true",
    "bf16": "trainer.precision=bf16-mixed",
    "frozen_bf16": "trainer.frozen_dtype=bfloat16",
    "8bit": "trainer.optimizer=adamw8bit",
}
CASES = ("none", "gc", "bf16", "gc+bf16", "gc+bf16+frozen_bf16", "gc+bf16+frozen_bf16+8bit")
GIB = 2**30
HEADROOM = 0.2  # of the card, for the CUDA context, kernels' workspaces and allocator fragmentation
PAPER_BATCH_PER_GPU = 4  # the paper's batch 32 on 8 GPUs
BNB_BLOCK, BNB_MIN_8BIT = 256, 4096  # bitsandbytes' block-wise quantisation and its smallest 8-bit tensor


def case_config(case: str, crop: int, batch: int, tiny: bool = False):
    """The SpaSemSR config of one case: every component on, ``crop``² HR, ``batch`` images; SD-2 with the SAM
    teacher, or (``tiny``, for a quick check of this script) the shipped tiny profile."""
    from spasemsr.config import load_config

    options = [] if case == "none" else case.split("+")
    profile = [] if tiny else ["profile=sd2", "model.visual.teacher=sam"]
    return load_config("configs/spasemsr.yaml", [
        *profile, "model.drm=none", "model.text.train_grounder=annotations", f"data.crop_size={crop}",
        f"data.batch_size={batch}", *(OPTION_OVERRIDES[o] for o in options)])


def training_batch(crop: int, batch: int, device: torch.device) -> dict:
    """HR crops of bundled photos (annotated, so the grounder has boxes), degraded as in training."""
    from spasemsr.data.datasets import HRFolderDataset
    from spasemsr.data.degradation import DegradationConfig, RealESRGANDegradation
    from spasemsr.data.images import image_size
    from spasemsr.data.samples import sample_paths
    large = [p for p in sample_paths("train") if min(image_size(p)) >= crop]
    dataset = HRFolderDataset(large, crop, 4, train=True)
    items = [dataset[(i % len(large), i)] for i in range(batch)]
    hr = torch.stack([item["hr"] for item in items]).to(device)
    lr, params = RealESRGANDegradation(DegradationConfig(), 4)(hr, torch.Generator(device).manual_seed(0))
    return {"hr": hr, "lr": lr, "degradation": params, "path": [item["path"] for item in items],
            "view": torch.stack([item["view"] for item in items]).to(device)}


def build(case: str, crop: int, batch: int, device: torch.device, tiny: bool = False):
    """The module (SD-2 shapes, random weights; or the tiny profile) on ``device`` with the case's options, a batch."""
    from benchmarks.models import sd2_training_module
    from spasemsr.models.spasemsr import SpaSemSRModule

    cfg = case_config(case, crop, batch, tiny)
    torch.manual_seed(0)
    with torch.device(device):  # built where it trains: no second copy, fast random init on a GPU
        module = SpaSemSRModule(cfg) if tiny else sd2_training_module(cfg)
    module.configure_model()  # what Lightning calls: gradient checkpointing, frozen dtype
    module.train()
    return cfg, module, training_batch(crop, batch, device)


def _autocast(cfg, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.trainer.precision == "bf16-mixed")


def static_bytes(cfg, module) -> dict[str, int]:
    """Exact bytes of the weights, the trainable parameters' fp32 gradients and the optimiser state."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    weights = sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
    if cfg.trainer.optimizer == "adamw8bit":
        optimizer = sum(2 * p.numel() + 2 * 4 * -(-p.numel() // BNB_BLOCK) if p.numel() >= BNB_MIN_8BIT
                        else 8 * p.numel() for p in trainable)
    else:
        optimizer = sum(8 * p.numel() for p in trainable)
    return {"weights": weights, "gradients": sum(4 * p.numel() for p in trainable), "optimizer": optimizer,
            "trainable_params": sum(p.numel() for p in trainable),
            "frozen_params": sum(p.numel() for p in module.parameters() if not p.requires_grad)}


def saved_activation_bytes(cfg, module, batch: dict) -> dict[str, int]:
    """Bytes of the distinct storages kept for backward in one forward (parameters excluded): what autograd saves,
    plus the inputs gradient checkpointing holds to recompute its blocks from."""
    params = {p.untyped_storage().data_ptr() for p in (*module.parameters(), *module.buffers())}
    saved: dict[int, tuple[int, str]] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params and tensor.device.type != "meta":
            saved[storage.data_ptr()] = (storage.nbytes(), str(tensor.dtype).replace("torch.", ""))
        return tensor  # kept: a freed storage's address could be reused and hide a later one

    checkpoint = torch.utils.checkpoint.checkpoint

    def counted_checkpoint(function, *args, **kwargs):  # what checkpointing keeps: its inputs, outside autograd's hooks
        for arg in args:
            if torch.is_tensor(arg):
                pack(arg)
        return checkpoint(function, *args, **kwargs)

    torch.utils.checkpoint.checkpoint = counted_checkpoint
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), _autocast(cfg, module.device):
            loss = module.loss(batch, torch.Generator(module.device).manual_seed(0))
    finally:
        torch.utils.checkpoint.checkpoint = checkpoint
    by_dtype: dict[str, int] = {}
    for size, dtype in saved.values():
        by_dtype[dtype] = by_dtype.get(dtype, 0) + size
    del loss
    return {"total": sum(by_dtype.values()), **{f"dtype_{k}": v for k, v in by_dtype.items()}}


def child(case: str, crop: int, batch: int, mode: str, device: torch.device, tiny: bool = False) -> dict:
    """One case in this fresh interpreter: ``account`` (forward with the saved-tensor hook) or ``step``."""
    cfg, module, data = build(case, crop, batch, device, tiny)
    record = {"static": static_bytes(cfg, module), "rss_after_build_mib": round(peak_rss_mib(), 1)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    if mode == "account":
        record["activations"] = saved_activation_bytes(cfg, module, data)
    else:
        optimizer = module.configure_optimizers()
        with _autocast(cfg, device):
            loss = module.loss(data, torch.Generator(device).manual_seed(0))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        record["loss"] = round(float(loss.detach()), 5)
    synchronize(device)
    record["seconds"] = round(time.perf_counter() - started, 1)
    record["peak_rss_mib"] = round(peak_rss_mib(), 1)
    if device.type == "cuda":
        record["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return record


def estimate(static: dict[str, int], activations: int) -> float:
    """GiB a GPU holds at the worst moment of a steady-state step (upper bound, see the module docstring)."""
    return round((static["weights"] + static["optimizer"] + static["gradients"] + activations) / GIB, 2)


def max_batch(static: dict[str, int], activations: dict[int, int], card_gib: float = 24) -> int:
    """The largest batch whose estimate stays within a ``card_gib`` GPU less ``HEADROOM``.

    Activations are a fixed part (autocast's half-precision weight copies) plus a part per image: the line
    through the two smallest measured batches.
    """
    (b1, a1), (b2, a2) = sorted(activations.items())[:2]
    per_image = (a2 - a1) / (b2 - b1)
    fixed = a1 - per_image * b1
    budget = card_gib * (1 - HEADROOM) * GIB - estimate(static, 0) * GIB - fixed
    return max(0, int(budget // per_image))


def main(argv: list[str] | None = None) -> None:
    """Run the cases, print the option table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=512, help="HR crop side (SD-2 trains at 512)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2], help="at least two batch sizes")
    parser.add_argument("--cases", nargs="+", default=list(CASES), help="options joined by +, or none")
    parser.add_argument("--step-cases", nargs="*", default=[], help="cases also measured with a real training step")
    parser.add_argument("--step-batches", type=int, nargs="*", help="batches of those steps (default: 1 on CPU, "
                        "--batches on CUDA)")
    parser.add_argument("--child", nargs=4, metavar=("CASE", "CROP", "BATCH", "MODE"), help=argparse.SUPPRESS)
    add_common_args(parser, "training_memory.json", repeats=None)
    args = parser.parse_args(argv)
    device = setup(args.device, args.threads)
    if args.child:
        case, crop, batch, mode = args.child
        print(json.dumps(child(case, int(crop), int(batch), mode, device)))
        return
    if len(set(args.batches)) < 2:
        parser.error("--batches needs at least two sizes (activations are fitted as fixed + per image)")

    def run(case: str, batch: int, mode: str) -> dict:
        progress(f"training_memory: {case}, batch {batch}, {mode}")
        argv = ["--child", case, str(args.crop), str(batch), mode, "--device", args.device,
                "--threads", str(args.threads)]
        return run_child("benchmarks.training_memory", argv)

    accounted = {(case, batch): run(case, batch, "account") for case in args.cases for batch in args.batches}
    step_batches = args.step_batches or (args.batches if device.type == "cuda" else [1])
    steps = {(case, batch): run(case, batch, "step") for case in args.step_cases for batch in step_batches}
    rows, capacity = [], {}
    for case in args.cases:
        static = accounted[case, args.batches[0]]["static"]
        capacity[case] = max_batch(static, {b: accounted[case, b]["activations"]["total"] for b in args.batches})
        for batch in args.batches:
            activations = accounted[case, batch]["activations"]
            row = {"case": case, "batch": batch, "crop": args.crop, "static_bytes": static,
                   "activation_bytes": activations["total"],
                   "activation_bytes_by_dtype": {k[6:]: v for k, v in activations.items() if k.startswith("dtype_")},
                   "estimate_gib": estimate(static, activations["total"])}
            step = steps.get((case, batch))
            if step is not None:
                row["step"] = {k: step[k] for k in ("seconds", "peak_rss_mib", "rss_after_build_mib", "loss",
                                                     "cuda_peak_mib") if k in step}
                if "cuda_peak_mib" in step:
                    row["cuda_peak_gib"] = round(step["cuda_peak_mib"] / 1024, 2)
            rows.append(row)
    recommended = next((case for case in args.cases if capacity[case] >= PAPER_BATCH_PER_GPU), None)

    def measured(row: dict) -> str | None:
        step = row.get("step")
        if not step:
            return None
        memory = f"CUDA {row['cuda_peak_gib']} GiB" if "cuda_peak_gib" in row else \
            f"RSS {step['peak_rss_mib'] / 1024:.2f} GiB"
        return f"{memory}, {step['seconds']} s"

    print_table(f"SpaSemSR training step at SD-2 shapes, {args.crop}^2 HR ({device.type}, {args.threads} threads)",
                ["options", "batch", "weights GiB", "grads GiB", "optimizer GiB", "activations GiB",
                 "estimate GiB", "max batch 24 GiB", "measured step"],
                [[r["case"], r["batch"], *(round(r["static_bytes"][k] / GIB, 2) for k in
                  ("weights", "gradients", "optimizer")), round(r["activation_bytes"] / GIB, 2),
                  r["estimate_gib"], capacity[r["case"]], measured(r)] for r in rows])
    print(f"24 GiB per GPU at {args.crop}^2 ({HEADROOM:.0%} kept for the CUDA context, workspaces and fragmentation): "
          f"first configuration reaching the paper's {PAPER_BATCH_PER_GPU} images per GPU: {recommended}")
    write_json(args.out, {"benchmark": "training_memory", "environment": environment(device),
                          "method": __doc__.split("\n\n", 2)[1], "cases": rows, "max_batch_24gib": capacity,
                          "headroom": HEADROOM, "recommended_24gib": recommended})

if __name__ == "__main__":
    main()
