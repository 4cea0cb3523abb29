"""The harness's layout holds: bench/ in rooms that import only the rooms below them, one
import style, no private name used across files, no metric named in bench/, the
documented ``python -m`` commands resolvable, and no source file over 500 lines."""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path
from typing import Iterator, List, Tuple

import metrics

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
# from the ground up, as docs/architecture.md lists them: a room imports only rooms before it
ROOMS = ("net", "plan", "generate", "timing", "preflight", "paired", "prefetch", "run", "regression")
SOURCE_DIRS = ("bench", "common", "metrics", "models", "results", "lcmbench", "hydra_plugins", "benchmarks")


def bench_files() -> List[Path]:
    return sorted(BENCH.rglob("*.py"))


def imports(path: Path) -> Iterator[Tuple[int, str, ast.ImportFrom | ast.Import]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            yield node.lineno, node.module or "", node
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, node


def room_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "bench" and parts[1] in ROOMS else None


def test_every_module_of_bench_lives_in_a_room():
    loose = [p.relative_to(BENCH).as_posix() for p in bench_files()
             if p.parent == BENCH and p.name not in ("__init__.py", "fvd_reference.py")]
    assert loose == [], "put these into one of the rooms of bench/"
    assert {p.name for p in BENCH.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(ROOMS)


def test_a_room_imports_only_the_rooms_below_it():
    upward = []
    for path in bench_files():
        own = room_of("bench." + ".".join(path.relative_to(BENCH).with_suffix("").parts))
        if own is None:
            continue
        for line, module, node in imports(path):
            names = [module] if isinstance(node, ast.Import) else [module] + [f"{module}.{a.name}" for a in node.names]
            target = next((room_of(m) for m in names if room_of(m)), None)
            if target and ROOMS.index(target) > ROOMS.index(own):
                upward.append(f"{path.relative_to(REPO)}:{line} ({own} imports {target})")
    assert upward == []


def test_imports_are_absolute_and_no_private_name_crosses_files():
    problems = []
    for folder in SOURCE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            for line, module, node in imports(path):
                if isinstance(node, ast.ImportFrom) and node.level:
                    problems.append(f"{path.relative_to(REPO)}:{line}: relative import")
                if isinstance(node, ast.ImportFrom) and module.split(".")[0] in SOURCE_DIRS:
                    private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                    if private:
                        problems.append(f"{path.relative_to(REPO)}:{line}: imports private {', '.join(private)}")
    assert problems == []


def test_no_string_in_bench_names_a_metric():
    """A metric is named by its plug-in (``plugin.name``), never by a string in bench/:
    a string that is a metric's name, or a config path into one (``metrics.fvd.``)."""
    names = metrics.available()
    assert {"fvd", "clipsim", "vbench"} <= set(names)
    config_path = re.compile(r"\bmetrics\.(" + "|".join(map(re.escape, names)) + r")\b")
    found = []
    for path in bench_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)   # prose for readers may name them
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if node.value in names or config_path.search(node.value):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value[:60]!r}")
    assert found == []


def test_the_documented_python_m_commands_resolve():
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
            *sorted((REPO / ".github" / "workflows").glob("*.yml"))]
    commands = sorted({m for d in docs for m in re.findall(r"python -m (bench(?:\.\w+)+)", d.read_text())})
    assert "bench.preflight" in commands and "bench.regression" in commands
    for module in commands:
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"`python -m {module}` is documented but no such module exists"
        if spec.submodule_search_locations:   # a room: it runs through its __main__.py
            assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{module} has no __main__.py"


def test_no_source_file_is_over_500_lines():
    long = [f"{p.relative_to(REPO)} ({n} lines)" for folder in SOURCE_DIRS for p in sorted((REPO / folder).rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500]
    assert long == []
