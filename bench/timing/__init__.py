"""Timing: denoising time per clip as the paper reports it (VAE excluded), and benchmark figures on disk.

    python -m bench.timing experiment=timing"""
