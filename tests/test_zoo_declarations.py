"""What the zoo's modules declare and refuse, one table each for the whole zoo: the family and the
complexity in n = H·W each module registers (with the paper it comes from), and the bad options
each refuses with a ``ValueError`` that names them.

The Hamburgers' declarations are tests/test_ham.py's; the contract every registered module keeps is
tests/test_module_contract.py's; each module's equations and its parity with its authors' or
mmseg's code are in tests/test_zoo_*.py.
"""

from __future__ import annotations

import pytest

from hambench.registry import build_module, get_spec

C = 32  # the width the bad options are given at

# name -> (family, complexity)
DECLARED = {
    # the baselines mmseg also implements (tests/test_zoo_mmseg.py)
    "none": ("none", "O(n)"),
    "nonlocal": ("attention", "O(n^2)"),
    "nonlocal-sdpa": ("attention", "O(n^2), O(n) memory"),
    "dnl": ("attention", "O(n^2)"),
    "danet": ("attention", "O(n^2)"),
    "ccnet": ("attention", "O(n*sqrt(n))"),
    "ema": ("attention", "O(n)"),
    "ocr": ("attention", "O(n)"),
    "gcnet": ("attention", "O(n)"),
    "linear-attention": ("attention", "O(n)"),
    "isa": ("attention", "O(n^2/P^2 + n*P^2)"),
    "ann": ("attention", "O(n)"),
    "ppm": ("other", "O(n)"),
    "aspp": ("other", "O(n)"),
    # restated from their papers' equations (tests/test_zoo_equations.py)
    "se": ("other", "O(n)"),
    "eca": ("other", "O(n)"),
    "cbam": ("other", "O(n)"),
    "axial": ("attention", "O(n*sqrt(n))"),
    "performer": ("attention", "O(n)"),
    "nystromformer": ("attention", "O(n)"),
    "external-attention": ("attention", "O(n)"),
    "double-attention": ("attention", "O(n)"),
    # large-kernel and gated mixers (tests/test_zoo_conv_gated.py)
    "lka": ("other", "O(n)"),
    "msca": ("other", "O(n)"),
    "gated-conv": ("other", "O(n)"),
    "gated-attention": ("attention", "O(n^2), O(n) memory"),
    "diff-attention": ("attention", "O(n^2), O(n) memory"),
    # state-space, Mamba-like, agent, many-head and spectral mixers (tests/test_zoo_scan_spectral.py)
    "ss2d": ("other", "O(n)"),
    "mlla": ("attention", "O(n)"),
    "agent-attention": ("attention", "O(n)"),
    "hydra-attention": ("attention", "O(n)"),
    "gfnet": ("other", "O(n log n)"),
}

# (name, options, words the ValueError's message matches)
BAD_OPTIONS = [
    ("linear-attention", {"heads": 5}, "heads"),
    ("nonlocal", {"reduction": 0}, "reduction"),
    ("dnl", {"temperature": 0.0}, "temperature"),
    ("ema", {"momentum": 2.0}, "momentum"),
    ("ocr", {"regions": 0}, "regions"),
    ("gcnet", {"ratio": 0.001}, "ratio"),
    ("ccnet", {"recurrence": 0}, "recurrence"),
    ("danet", {"reduction": 0}, "reduction"),
    ("isa", {"block": 0}, "block"),
    ("isa", {"reduction": 0}, "reduction"),
    ("ann", {"pool_scales": []}, "pool_scales"),
    ("ann", {"reduction": 0}, "reduction"),
    ("ppm", {"pool_scales": [0, 2]}, "pool_scales"),
    ("ppm", {"reduction": 0}, "reduction"),
    ("aspp", {"dilations": []}, "dilations"),
    ("aspp", {"fuse_kernel": 5}, "fuse_kernel"),
    ("se", {"reduction": 0}, "reduction"),
    ("eca", {"kernel_size": 4}, "kernel_size"),
    ("cbam", {"kernel_size": 6}, "kernel_size"),
    ("axial", {"heads": 3}, "heads"),
    ("performer", {"features": 0}, "features"),
    ("performer", {"stabiliser": -1.0}, "stabiliser"),
    ("nystromformer", {"landmarks": 0}, "landmarks"),
    ("external-attention", {"memory": 0}, "memory"),
    ("double-attention", {"reduction": 0}, "reduction"),
    ("lka", {"kernel_size": 12, "dilation": 3}, "dilated kernel"),
    ("lka", {"dilation": 0}, "dilation"),
    ("gated-conv", {"conv_ratio": 0.0}, "conv_ratio"),
    ("gated-conv", {"kernel_size": 4}, "kernel_size"),
    ("gated-attention", {"heads": 3}, "heads"),
    ("diff-attention", {"heads": 3}, "heads"),
    ("diff-attention", {"layer": 0}, "layer"),
    ("ss2d", {"d_state": 0}, "d_state"),
    ("ss2d", {"chunk": 0}, "chunk"),
    ("ss2d", {"d_conv": 4}, "d_conv"),
    ("mlla", {"heads": 3}, "heads"),
    ("agent-attention", {"agents": 8}, "agents"),
    ("agent-attention", {"heads": 3}, "heads"),
    ("gfnet", {"filter_size": 0}, "filter_size"),
]


@pytest.mark.parametrize("name", DECLARED)
def test_registered_family_and_complexity(name):
    spec = get_spec(name)
    assert (spec.family, spec.complexity) == DECLARED[name]
    assert spec.paper


@pytest.mark.parametrize("name, options, words", BAD_OPTIONS)
def test_bad_options_name_the_problem(name, options, words):
    with pytest.raises(ValueError, match=words):
        build_module(name, C, **options)
