"""The regression check the GPU workflow runs, and FVD's real-video reference file it reads.

    python -m bench.regression --baseline results/baselines/regression.json --run-dir RUN"""
