"""The ``params`` describer: captions from the degradation parameters the pipeline actually sampled."""

from __future__ import annotations

from torch import Tensor

from spasemsr.guidance.describer.template import QUANTITIES, caption, check_fields, summarise


class ParamsDescriber:
    """Training-time captions: exact, since the degradation pipeline reports what it did to each image."""

    def __init__(self, fields: tuple[str, ...] = QUANTITIES) -> None:
        self.fields = check_fields(tuple(fields))

    def __call__(self, lr: Tensor, params: dict[str, Tensor] | None = None) -> list[str]:
        if params is None:
            raise ValueError(
                "the params describer needs the degradation parameters (the batch's 'degradation' dict); "
                "at inference use the estimator or vlm describer"
            )
        summary = summarise(params)
        if len(summary["blur"]) != lr.shape[0]:
            raise ValueError(f"got {lr.shape[0]} LR images but degradation params for {len(summary['blur'])}")
        return [caption({name: float(value[i]) for name, value in summary.items()}, self.fields)
                for i in range(lr.shape[0])]
