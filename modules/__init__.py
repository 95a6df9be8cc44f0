"""The zoo of context modules, installed as ``hambench.modules``.

Importing this package registers every built-in module. One flat file per family, as in timm.
"""

from hambench.modules import (
    agent_attention,  # noqa: F401  (agent attention)
    ann,  # noqa: F401  (asymmetric pyramid non-local block)
    axial,  # noqa: F401  (axial attention, rows then columns)
    ccnet,  # noqa: F401  (criss-cross attention)
    channel_attention,  # noqa: F401  (SE, ECA, CBAM channel gates)
    conv_attention,  # noqa: F401  (VAN's LKA, SegNeXt's MSCA)
    danet,  # noqa: F401  (DANet: position + channel attention)
    diff_attention,  # noqa: F401  (differential attention)
    dnl,  # noqa: F401  (disentangled non-local)
    efficient_attention,  # noqa: F401  (Performer, Nyströmformer, external, double attention)
    ema,  # noqa: F401  (EM attention)
    gated,  # noqa: F401  (MambaOut's gated CNN block, gated attention)
    gcnet,  # noqa: F401  (global context block)
    gfnet,  # noqa: F401  (GFNet global filter: FFT, learnt spectral filter)
    ham,  # noqa: F401  (Hamburger: NMF, CD, VQ)
    hydra_attention,  # noqa: F401  (Hydra attention: as many heads as channels)
    identity,  # noqa: F401  (none: the no-context reference)
    isa,  # noqa: F401  (interlaced sparse self-attention)
    linear_attention,  # noqa: F401  (elu+1 linear attention)
    mlla,  # noqa: F401  (Mamba-like linear attention, MLLA)
    nonlocal_attn,  # noqa: F401  (non-local block)
    nonlocal_sdpa,  # noqa: F401  (non-local block, attention through fused SDPA)
    ocr,  # noqa: F401  (object-contextual representations)
    pyramid,  # noqa: F401  (PSPNet pyramid pooling, DeepLabv3 ASPP)
    ss2d,  # noqa: F401  (VMamba SS2D: four-direction selective scan)
)
