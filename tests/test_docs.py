"""The documents hold together: a short README, links that reach their files, the set-up commands CI runs.

README.md is the front door (at most ~200 lines; shared/STYLE.md, "Docs"); the rest lives in
docs/*.md and BENCHMARKS.md. Every relative link in them must reach a file, and a link with a
``#fragment`` into a Markdown file one of its headings (as GitHub names them). The README's two
set-up commands are the scripts that exist, and its test command is what ``.ci/run`` runs.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"
MAX_README_LINES = 210
SETUP_HEADING = "## Set-up: two commands"
SETUP_COMMANDS = ["scripts/run.sh", "scripts/test.sh"]

# [text](target) and ![alt](target), with an optional "title"; the text may hold one level of [].
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def documents() -> list[Path]:
    return [README, ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks, inline code spans blanked."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "``", line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    return [target for line in prose_lines(path) for target in LINK.findall(line)]


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move the detail into docs/"
    )


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_reach_their_files_and_headings(path):
    broken = []
    for target in links(path):
        if SCHEME.match(target):
            continue  # http(s), mailto: not checked here
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            shown = linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked
            broken.append(f"{target}: no file {shown}")
            continue
        if fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.relative_to(ROOT)}")
    assert not broken, f"{path.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in links(README)
        if not SCHEME.match(target) and not target.startswith("#")
    }
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"README.md's 'Where to go next' should link {missing}"


def test_documents_name_no_path_of_this_machine():
    for path in documents():
        assert str(ROOT) not in path.read_text(encoding="utf-8"), f"{path.name} names {ROOT}"


def readme_setup_commands() -> list[str]:
    """The commands of the first code block under the README's set-up heading, comments dropped."""
    text = README.read_text(encoding="utf-8")
    assert SETUP_HEADING in text, f"README.md lost its {SETUP_HEADING!r} section"
    section = text.split(SETUP_HEADING, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", section, re.S)
    assert block, "no code block under the set-up heading"
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [command for command in commands if command]


def test_readme_setup_is_the_two_scripts():
    assert readme_setup_commands() == SETUP_COMMANDS
    for command in SETUP_COMMANDS:
        script = ROOT / command
        assert script.is_file(), f"{command} is gone"
        assert os.access(script, os.X_OK), f"{command} is not executable, yet the README runs it as is"
        assert script.read_text(encoding="utf-8").startswith("#!"), f"{command} has no #! line"


def test_ci_runs_the_readme_test_command():
    """.ci/run goes to the project folder and execs the README's test command, nothing else."""
    text = CI_RUN.read_text(encoding="utf-8")
    assert os.access(CI_RUN, os.X_OK)
    lines = [line.strip() for line in text.splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert 'cd "$(dirname "$0")/.."' in commands, ".ci/run no longer runs from the project folder"
    execs = [shlex.split(command) for command in commands if command.startswith("exec ")]
    assert len(execs) == 1, f".ci/run should exec one command: {commands}"
    argv = execs[0][1:]
    if argv and argv[0] in ("bash", "sh"):
        argv = argv[1:]
    test_command = readme_setup_commands()[1]
    assert argv == shlex.split(test_command), f".ci/run runs {argv}, the README says {test_command!r}"
