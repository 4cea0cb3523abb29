"""Prefetch: download what an experiment needs, verified, and write the manifest an offline node checks.

    python -m bench.prefetch experiment=table1 --manifest MANIFEST
    python -m bench.prefetch --verify MANIFEST"""
