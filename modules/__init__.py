"""The zoo of context modules, installed as ``hambench.modules``.

Importing this package registers every built-in module. One flat file per family, as in timm.
"""

from hambench.modules import ham  # noqa: F401  (Hamburger: NMF, CD, VQ)
from hambench.modules import identity  # noqa: F401  (none: the no-context reference)
from hambench.modules import nonlocal_attn  # noqa: F401  (non-local block)
from hambench.modules import dnl  # noqa: F401  (disentangled non-local)
from hambench.modules import danet  # noqa: F401  (DANet: position + channel attention)
from hambench.modules import ccnet  # noqa: F401  (criss-cross attention)
from hambench.modules import ema  # noqa: F401  (EM attention)
from hambench.modules import ocr  # noqa: F401  (object-contextual representations)
from hambench.modules import gcnet  # noqa: F401  (global context block)
from hambench.modules import linear_attention  # noqa: F401  (elu+1 linear attention)
from hambench.modules import channel_attention  # noqa: F401  (SE, ECA, CBAM channel gates)
from hambench.modules import efficient_attention  # noqa: F401  (Performer, Nyströmformer, external, double attention)
from hambench.modules import axial  # noqa: F401  (axial attention, rows then columns)
from hambench.modules import nonlocal_sdpa  # noqa: F401  (non-local block, attention through fused SDPA)
from hambench.modules import isa  # noqa: F401  (interlaced sparse self-attention)
from hambench.modules import ann  # noqa: F401  (asymmetric pyramid non-local block)
from hambench.modules import pyramid  # noqa: F401  (PSPNet pyramid pooling, DeepLabv3 ASPP)
