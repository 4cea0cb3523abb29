"""Every reference in the repository is one a user can follow: no code, test or doc points
to a design document the project does not contain or to a folder outside the checkout,
and every relative markdown link (and its #anchor) resolves."""
import os
import re
from pathlib import Path

from tests.conftest import REPO

TEXT_FILES = (".py", ".md", ".yaml", ".yml", ".sh")
NOT_SOURCE = {".git", ".venv", "runs", "outputs", "wheels", "__pycache__", ".pytest_cache", "node_modules"}
# Spelt in pieces so that this file does not match itself.
UNFOLLOWABLE = [re.compile("DESIGN" + r"\.md", re.I), re.compile(r"\bdesign" + r" notes?\b", re.I),
                re.compile(r"\bDESIGN" + r" section\b"), re.compile(r"\.\./" + r"shared\b"),
                re.compile(r'"shared"' + r'\s*/\s*"data"')]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def source_files():
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in NOT_SOURCE and not d.endswith(".egg-info")]
        for name in files:
            if name.endswith(TEXT_FILES):
                yield Path(root, name)


def slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(md: Path) -> set:
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", md.read_text(), re.M)}


def test_slug_is_githubs():
    assert slug("Timing protocol (`bench/timing/denoising.py`)") == "timing-protocol-benchtimingdenoisingpy"
    assert slug("FLOPs per unit of work") == "flops-per-unit-of-work"


def test_no_reference_to_a_file_outside_the_project():
    found = []
    for path in source_files():
        if path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            found += [f"{path.relative_to(REPO)}:{number}: {line.strip()}" for p in UNFOLLOWABLE if p.search(line)]
    assert not found, "references a user cannot follow (state the fact in place or in docs/):\n" + "\n".join(found)


def test_relative_markdown_links_resolve():
    broken, checked = [], 0
    for md in (p for p in source_files() if p.suffix == ".md"):
        for m in LINK.finditer(md.read_text()):
            target = m.group(1)
            if re.match(r"[a-z][a-z0-9+.-]*:", target):   # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (md.parent / file).resolve() if file else md
            checked += 1
            if not dest.exists():
                broken.append(f"{md.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{md.relative_to(REPO)}: {target} (no heading #{anchor})")
    assert checked > 5 and not broken, "\n".join(broken)
