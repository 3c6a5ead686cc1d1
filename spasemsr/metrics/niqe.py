"""No-reference metrics that work offline: NIQE with vendored LIVE parameters, and PIQE (no parameters at all).

pyiqa's NIQE downloads `niqe_modelparameters.mat` on first use; spasemsr instead ships the LIVE
pristine-image model taken from basicsr 1.4.2 (see data/README.md) and hands pyiqa that file, so the
perception axis of every sweep is available on a machine without internet.
"""

from __future__ import annotations

from torch import Tensor

from spasemsr.metrics.availability import VENDORED_DIR
from spasemsr.metrics.pyiqa_backend import pyiqa_score

NIQE_PARAMS = VENDORED_DIR / "niqe_pris_params.mat"
"""LIVE NIQE pristine model (mu_prisparam 1x36, cov_prisparam 36x36) in the .mat layout pyiqa reads."""


def niqe(sr: Tensor) -> Tensor:
    """NIQE per image, (B,), lower is more natural: pyiqa `niqe` (Y of YIQ, no crop) with the vendored parameters."""
    if not NIQE_PARAMS.is_file():
        raise FileNotFoundError(
            f"NIQE parameters missing at {NIQE_PARAMS}; they ship with spasemsr (spasemsr/metrics/data), "
            "restore them with `git checkout -- spasemsr/metrics/data` or reinstall the package"
        )
    return pyiqa_score("niqe", sr, pretrained_model_path=str(NIQE_PARAMS))


def piqe(sr: Tensor) -> Tensor:
    """PIQE per image, (B,), lower is better: pyiqa `piqe`, a block-wise distortion score with no learned weights."""
    return pyiqa_score("piqe", sr)
