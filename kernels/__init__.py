"""Kernels: one folder per op, a plain-torch `naive.py` beside the Triton code.

Imports torch and triton only. Dispatch: Triton on CUDA, naive elsewhere; DOCEXTRACT_KERNELS=
naive|triton forces one.
"""
