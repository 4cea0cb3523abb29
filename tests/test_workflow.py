"""The GPU regression workflow: valid YAML of the shape GitHub Actions reads, and every
command its steps run exists in the repository (actionlint has no wheel on the package
registries, only a source package that downloads its binary at build time)."""
import re
import shlex
from pathlib import Path

import yaml

from tests.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "gpu-regression.yml"
SYSTEM = {"nvidia-smi", "echo", "tee", "touch", "["}   # on every runner, not the repository's
KEYWORDS = ("if", "then", "else", "fi")   # shell words before a command


def _workflow():
    data = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True
    return data, data.get("on", data.get(True))


def _commands(script: str):
    """The command words of a run: block (continuations joined, pipes and && split)."""
    text = re.sub(r"\$\{\{.*?\}\}", "X", script.replace("\\\n", " "))
    for line in text.splitlines():
        for part in re.split(r"\|\||&&|\||;", line):
            words = shlex.split(part.strip(), comments=True)
            while words and words[0] in KEYWORDS:
                words = words[1:]
            if words:
                yield words


def _makefile_targets():
    return set(re.findall(r"^([A-Za-z][\w.-]*):", (REPO / "Makefile").read_text(), re.M))


def test_the_workflow_is_valid_and_every_step_runs_repository_code():
    data, on = _workflow()
    assert set(on) == {"schedule", "workflow_dispatch"} and "make_baseline" in on["workflow_dispatch"]["inputs"]
    jobs = data["jobs"]
    assert set(jobs) == {"regression", "baseline-candidate"}
    targets = _makefile_targets()
    seen_modules = set()
    for name, job in jobs.items():
        assert job["runs-on"] == ["self-hosted", "gpu"] and job["steps"], name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            if "uses" in step:
                assert re.fullmatch(r"actions/(checkout|cache|upload-artifact)@v4", step["uses"]), step["uses"]
                continue
            for words in _commands(step["run"]):
                cmd = words[0]
                if cmd == "python":
                    assert words[1] == "-m", words
                    module = words[2]
                    path = REPO / Path(*module.split("."))
                    assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), module
                    seen_modules.add(module)
                elif cmd == "make":
                    assert words[1] in targets, words
                else:
                    assert cmd in SYSTEM, f"{name}: step {step.get('name')!r} runs {cmd!r}, not in the repository"
    assert seen_modules == {"bench.regression"}   # the job's logic is one script


def test_the_workflow_caches_the_venv_outside_the_checkout_and_keeps_the_run():
    data, _ = _workflow()
    text = WORKFLOW.read_text()
    assert "hashFiles('pyproject.toml', 'Makefile')" in text
    assert data["env"]["VENV"].startswith("${{ github.workspace }}/../")
    assert data["env"]["HF_HUB_OFFLINE"] == "1" and "LCMBENCH_FVD_REFERENCE" in data["env"]
    steps = data["jobs"]["regression"]["steps"]
    check = next(s for s in steps if "bench.regression" in s.get("run", ""))
    assert "--summary \"$GITHUB_STEP_SUMMARY\"" in check["run"] and "--manifest" in check["run"]
    assert "LCMBENCH_REGRESSION_OPTIONAL" in check["run"]      # the only way a missing baseline stays green
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "${{ env.RUN_DIR }}"
    candidate = data["jobs"]["baseline-candidate"]
    assert any("--make-baseline" in s.get("run", "") for s in candidate["steps"])
