"""Orthogonal slices of a volume for display: the one place that knows how a RAS array is cut and turned.

Volumes are RAS arrays ``(X, Y, Z)``. A plane's slice is taken along the axis the plane fixes
(sagittal: X, coronal: Y, axial: Z) and transposed, so that ``imshow(slice, origin="lower")`` shows
superior at the top (anterior, in the axial plane), anterior on the right of a sagittal slice, and
the subject's right on the viewer's right (the neurological convention). Every figure of the book
cuts volumes here, so they all share that orientation.

Vocabulary: a *voxel* is a tuple of array indices ``(i, j, k)``; the planes pass through it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tausynth.vocabulary import PLANES, check_choice

__all__ = ["PLANE_AXIS", "PLANE_COLORS", "center_voxel", "orthogonal_slices", "plane_slice"]

#: The array axis each plane fixes, in an ``(X, Y, Z)`` RAS volume.
PLANE_AXIS: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
#: One color per plane, the same in every figure of the book.
PLANE_COLORS: dict[str, str] = {"axial": "#1f77b4", "coronal": "#ff7f0e", "sagittal": "#2ca02c"}


def center_voxel(volume: np.ndarray) -> tuple[int, int, int]:
    """The voxel at the center of mass of ``|volume|``; the array center if the volume is all zero.

    For a mask this is the mask's centroid, rounded to the nearest voxel.

    Examples
    --------
    >>> mask = np.zeros((5, 5, 5)); mask[1:4, 0:2, 4] = 1
    >>> center_voxel(mask)
    (2, 0, 4)
    >>> center_voxel(np.zeros((4, 6, 8)))
    (2, 3, 4)
    """
    v = np.abs(np.asarray(volume, dtype=np.float64))
    total = v.sum()
    if total == 0:
        return tuple(s // 2 for s in v.shape)  # type: ignore[return-value]
    return tuple(int(round(float((g * v).sum() / total))) for g in np.indices(v.shape))  # type: ignore[return-value]


def plane_slice(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """Slice ``index`` of ``plane`` from an ``(X, Y, Z)`` array, turned for ``imshow(origin="lower")``.

    Examples
    --------
    >>> vol = np.arange(24).reshape(2, 3, 4)
    >>> plane_slice(vol, "axial", 1).shape    # (Y, X): rows run anterior, columns run right
    (3, 2)
    >>> bool((plane_slice(vol, "sagittal", 0) == vol[0].T).all())
    True
    """
    check_choice("plane", plane, PLANES)
    return np.take(np.asarray(volume), index, axis=PLANE_AXIS[plane]).T


def orthogonal_slices(
    volume: np.ndarray,
    voxel: Sequence[int] | None = None,
    planes: Sequence[str] = ("sagittal", "coronal", "axial"),
) -> list[tuple[str, np.ndarray]]:
    """The slices of ``planes`` through ``voxel``, each turned for ``imshow(origin="lower")``.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(X, Y, Z)`` RAS array.
    voxel : sequence of int, optional
        Array indices ``(i, j, k)`` the planes pass through; default the array's middle voxel
        (``shape // 2``), which is the same voxel for every volume on one grid.
    planes : sequence of str
        Which planes, in this order.

    Returns
    -------
    list of (str, numpy.ndarray)
        ``(plane, slice)`` pairs.

    Examples
    --------
    >>> [(p, s.shape) for p, s in orthogonal_slices(np.zeros((4, 6, 8)))]
    [('sagittal', (8, 6)), ('coronal', (8, 4)), ('axial', (6, 4))]
    """
    volume = np.asarray(volume)
    middle = tuple(s // 2 for s in volume.shape)
    where = tuple(int(i) for i in (middle if voxel is None else voxel))
    return [(plane, plane_slice(volume, plane, where[PLANE_AXIS[plane]])) for plane in planes]
