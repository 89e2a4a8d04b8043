"""Volumes a reader can scroll through: real PET, synthetic PET and their difference over the T1.

nilearn's ``view_img`` writes a self-contained page (its JavaScript inlined, the slices as embedded
images), so the viewers work offline, in the rendered book and in a notebook alike. Its favicon link
is the only thing that points outside, and is removed.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from html import escape
from typing import Any

import nibabel as nib
import numpy as np

from tausynth.errors import TausynthError
from tausynth.plotting.scales import DIFF_CMAP, PET_CMAP, SUVR_DIFF, SUVR_RANGE

__all__ = ["subject_viewers"]

_EXTERNAL_ICON = re.compile(r"<link\s+rel=\"icon\"[^>]*>", re.S)


def _viewer(img: nib.Nifti1Image, t1: nib.Nifti1Image, title: str, width: int, **kwargs: Any) -> str:
    from nilearn.plotting import view_img

    with warnings.catch_warnings():  # nilearn's notes on thresholds and masked arrays are not the reader's
        warnings.simplefilter("ignore")
        view = view_img(img, bg_img=t1, title=title, width_view=width, black_bg=True, annotate=False,
                        draw_cross=False, colorbar=True, **kwargs)
    html = _EXTERNAL_ICON.sub("", view.get_standalone())
    return (f'<iframe class="tausynth-viewer" title="{escape(title, quote=True)}" srcdoc="{escape(html, quote=True)}" '
            f'width="{width + 20}" height="{int(width * 0.42) + 60}" frameBorder="0"></iframe>')


def subject_viewers(case: Mapping[str, Any], width: int = 380) -> str:
    """HTML of three scrollable views of one subject: real PET, synthetic PET, and synthetic − real, each over its T1.

    Parameters
    ----------
    case : mapping
        ``real`` and ``synthetic`` (3D SUVR arrays), ``t1`` (3D array), ``affine`` (4×4) and
        optionally ``mask`` (3D bool; the difference is shown inside it) and ``title``.
    width : int, default=380
        Width of each view in pixels.

    Returns
    -------
    str
        Three ``<iframe>`` elements side by side; PET on the book's fixed SUVR scale
        (:mod:`tausynth.plotting.scales`).
    """
    missing = [k for k in ("real", "synthetic", "t1", "affine") if k not in case]
    if missing:
        raise TausynthError(f"subject_viewers: the case has no {', '.join(missing)}")
    affine = np.asarray(case["affine"], dtype=float)
    real = np.asarray(case["real"], dtype=np.float32)
    synthetic = np.asarray(case["synthetic"], dtype=np.float32)
    mask = np.asarray(case.get("mask", real != 0), dtype=bool)
    t1 = nib.Nifti1Image(np.asarray(case["t1"], dtype=np.float32), affine)
    pet = {"cmap": PET_CMAP, "symmetric_cmap": False, "vmin": SUVR_RANGE[0], "vmax": SUVR_RANGE[1], "threshold": 0.05}
    views = [
        _viewer(nib.Nifti1Image(real, affine), t1, "real PET (SUVR)", width, **pet),
        _viewer(nib.Nifti1Image(synthetic, affine), t1, "synthetic PET (SUVR)", width, **pet),
        _viewer(nib.Nifti1Image(np.where(mask, synthetic - real, 0).astype(np.float32), affine), t1,
                "synthetic − real (SUVR)", width, cmap=DIFF_CMAP, symmetric_cmap=True, vmax=SUVR_DIFF, threshold=0.02),
    ]
    title = f"<p><strong>{escape(str(case.get('title', '')).replace(chr(10), ', '))}</strong></p>" if case.get("title") else ""
    return f'{title}<div style="display:flex;flex-wrap:wrap;gap:6px">{"".join(views)}</div>'
