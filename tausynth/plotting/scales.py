"""The book's color scales for PET, in one place, so every figure shows SUVR on the same scale.

A fixed range (not each image's own percentiles) keeps a healthy brain from looking saturated next
to an AD one, and a flat prediction from looking structured.
"""

from __future__ import annotations

#: Color map of PET (SUVR) images.
PET_CMAP = "nipy_spectral"
#: Flortaucipir SUVR display range: from below the white-matter level to above Braak V–VI uptake.
SUVR_RANGE: tuple[float, float] = (0.4, 2.6)
#: Half-width of the color scale of synthetic − real SUVR differences.
SUVR_DIFF = 0.6
#: Color map of signed differences.
DIFF_CMAP = "RdBu_r"
