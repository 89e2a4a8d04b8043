"""tausynth: T1w MRI to [18F]flortaucipir PET synthesis with the cyclic 2.5D perceptual loss.

The executable companion to Moon, Kim, Chung, Jang, "Cyclic 2.5D Perceptual Loss for Cross-Modal
3D Medical Image Synthesis: T1w MRI to Tau PET" (Human Brain Mapping 2026).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tausynth")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
