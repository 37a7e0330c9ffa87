"""Which int8 computation stands for a target, and when this host's kernels are not the target's."""

from __future__ import annotations

from edgecnn.analysis.drift import EXACT_QDQ, HOST_KERNELS, host_unlike_target, int8_basis

ZEN3 = "processor\t: 0\nflags\t\t: fpu sse4_1 sse4_2 avx avx2 fma\n"  # x86 without VNNI: u8s8 kernels saturate
ZEN4 = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 avx512f avx512_vnni\n"  # VNNI: they do not
ARM = "processor\t: 0\nFeatures\t: fp asimd asimddp\n"


def test_the_basis_follows_the_target():
    assert int8_basis("x86_64", ["sse4", "avx2"]) == HOST_KERNELS
    assert int8_basis("x86_64", ["avx2", "avx512_vnni"]) == EXACT_QDQ
    assert int8_basis("aarch64", ["neon", "dotprod"]) == EXACT_QDQ


def test_a_vnni_host_says_its_kernels_are_not_a_saturating_target_s():
    assert host_unlike_target(HOST_KERNELS, ZEN3) is None  # the host is the target's kind
    line = host_unlike_target(HOST_KERNELS, ZEN4)
    assert line and "avx512_vnni" in line and "not the target's" in line
    assert host_unlike_target(EXACT_QDQ, ZEN4) is None  # the exact arithmetic stands for the target anyway
    assert "no x86" in host_unlike_target(HOST_KERNELS, ARM)  # an ARM host runs ARM kernels
