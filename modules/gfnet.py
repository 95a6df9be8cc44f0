"""Global filter layer (Rao et al., NeurIPS 2021, "Global Filter Networks for Image
Classification", GFNet).

Token mixing by a learnt filter in the frequency domain: a 2D real FFT of every channel, an
elementwise product with a learnt complex filter K (one value per frequency and channel), the
inverse FFT back to H x W:

    X = rFFT2(x),   X̃ = K ⊙ X,   y = irFFT2(X̃)          (norm="ortho", as the paper's code)

A product in the frequency domain is a circular convolution in space with a kernel as large as the
map: every output pixel sees every input pixel, with no attention map. O(n log n) for the FFTs,
O(n) for the product.

The block is the GFNet block's token-mixing half, pre-norm and residual: y = x + GF(LN(x)). (The
GFNet block continues with LN and an MLP under the same residual; that FFN is what every compared
block would share, so it is not part of a context module, as for ``ss2d``, ``mlla``, ...).

**Other sizes.** K is learnt on a ``filter_size`` x (``filter_size`` // 2 + 1) frequency grid (the
rFFT of a ``filter_size``² map). An input of another size has another frequency grid, (H, W // 2 +
1); K is then resized to it, its real and imaginary parts by bicubic interpolation with
``align_corners=True``, as GFNet's own fine-tuning code (``main_gfnet.py``) resizes a checkpoint's
filters for a new resolution. At ``filter_size`` x ``filter_size`` the learnt values are used
as they are.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import nn

from hambench.registry import register_module

LN_EPS = 1e-6  # GFNet's norm_layer: partial(nn.LayerNorm, eps=1e-6)


def resize_filter(weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The learnt filter (h, w, C, 2) as a complex (C, height, width) grid: as it is when the sizes
    agree, else bicubically resized (``align_corners=True``), real and imaginary parts alike."""
    if weight.shape[:2] != (height, width):
        grid = weight.flatten(2).permute(2, 0, 1).unsqueeze(0)  # (1, 2C, h, w), channel-major
        grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=True)
        weight = grid.squeeze(0).permute(1, 2, 0).unflatten(-1, weight.shape[2:])
    return torch.view_as_complex(weight.contiguous()).permute(2, 0, 1)


@register_module(
    "gfnet",
    family="other",
    paper="Rao et al., NeurIPS 2021 (GFNet, global filter: rFFT2, learnt spectral filter, inverse)",
    complexity="O(n log n)",
)
class GlobalFilter(nn.Module):
    """GFNet's global filter in a pre-norm residual block: ``x + irFFT2(K ⊙ rFFT2(LN(x)))``.

    Args:
        channels: input and output width C.
        filter_size: the spatial size s whose frequency grid, s x (s // 2 + 1), K is learnt on
            (64: the head's map of a 512² crop at output stride 8); other sizes resize K.
        norm: LayerNorm before the filter (GFNet's norm1).
    """

    def __init__(self, channels: int, filter_size: int = 64, norm: bool = True) -> None:
        super().__init__()
        if filter_size < 1:
            raise ValueError(f"gfnet: filter_size must be >= 1, got {filter_size}")
        self.filter_size = filter_size
        self.norm = LayerNorm2d(channels, eps=LN_EPS) if norm else nn.Identity()
        # GFNet's parameterisation and initialisation: (h, w, C, 2) real pairs, N(0, 0.02²).
        self.complex_weight = nn.Parameter(torch.randn(filter_size, filter_size // 2 + 1, channels, 2) * 0.02)

    def filter(self, x: torch.Tensor) -> torch.Tensor:
        """irFFT2(K ⊙ rFFT2(x)) over (H, W), per channel; in float32 at least (no half FFTs on CPU)."""
        _, _, height, width = x.shape
        with torch.autocast(x.device.type, enabled=False):
            dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
            spectrum = torch.fft.rfft2(x.to(dtype), dim=(2, 3), norm="ortho")  # (B, C, H, W // 2 + 1)
            kernel = resize_filter(self.complex_weight.to(dtype), height, width // 2 + 1)
            return torch.fft.irfft2(spectrum * kernel, s=(height, width), dim=(2, 3), norm="ortho").to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.filter(self.norm(x))

    def analytic_flops(self, shape: tuple[int, int, int, int]) -> dict[str, int]:
        """FLOPs of the ops MAC counters do not see, at input ``shape`` (B, C, H, W), n = H W.

        Convention: real floating-point operations. A complex FFT of N points costs 5 N log2 N
        (the usual radix-2 count); a real-input FFT, and its inverse to a real output, half that,
        2.5 N log2 N. Per channel and image, one rFFT2 and one irFFT2 of n points:

            fft             = B · C · 2 · 2.5 · n · log2(n) = 5 B C n log2 n
            spectral_filter = 6 B C H (W // 2 + 1)           (a complex product: 4 mul + 2 add)

        Not included: the ortho scaling (one multiply per output, folded into the transform by
        most FFT libraries), and resizing K when the input's size differs from ``filter_size``
        (independent of B, an interpolation of 2 C H (W // 2 + 1) values).
        """
        batch, channels, height, width = shape
        n = height * width
        return {
            "fft": round(5 * batch * channels * n * math.log2(n)),
            "spectral_filter": 6 * batch * channels * height * (width // 2 + 1),
        }
