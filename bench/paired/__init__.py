"""Comparing runs clip by clip: paired differences of two runs, the leaderboard's differences against one reference method, and regression baselines.

    python -m bench.paired BASELINE_RUN CURRENT_RUN"""
