"""The README and ``docs/`` say only what the code does: set-up, links, commands, pictures.

- CI runs the README's test command, and the README stays a landing page.
- Every relative link and anchor in README.md and docs/*.md resolves, every repository
  path named in inline code exists, and docs/index.md links every page.
- Every ``fes`` command in a shell block parses with ``fes``'s own parser; every ``fes``
  command in inline code names a subcommand and only options its ``--help`` lists.
- Every ``python -m MODULE`` shown exists; the project's own modules accept the options
  shown (their argument parsers are read without running them).
- Every picture is committed and made by commands shown in the same page.
- The exit-code table lists every exit code of ``controller/commands/common.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.cli import build_parser
from controller.commands import common

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROJECT_PACKAGES = ("controller", "sim", "hw", "configs")
README_MAX_LINES = 250

FENCE = re.compile(r"^ *```(\w*)\n(.*?)^ *```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$", re.MULTILINE)


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def prose(text: str) -> str:
    """The text of a page outside its fenced blocks."""
    return FENCE.sub("", text)


def shell_blocks(text: str) -> Iterator[str]:
    for lang, body in FENCE.findall(text):
        if lang in ("sh", "bash", "shell"):
            yield body


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to -."""
    seen: dict[str, int] = {}
    out = set()
    for _, heading in HEADING.findall(prose(page.read_text())):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


# --- set-up and size ------------------------------------------------------------------


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    install_and_sim, test_command = readme.strip().splitlines()[:2]
    assert install_and_sim.endswith("fes sim")
    ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] == test_command


def test_readme_is_a_landing_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


# --- links --------------------------------------------------------------------------


def links() -> Iterator[tuple[Path, str]]:
    for page in PAGES:
        text = INLINE_CODE.sub("", prose(page.read_text()))
        for target in LINK.findall(text):
            yield page, target


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_and_anchor_resolves(page):
    bad = []
    for source, target in links():
        if source != page or re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(ROOT) or not file.exists():
            bad.append(f"{target}: no such file")
        elif anchor and anchor not in anchors(file):
            bad.append(f"{target}: no heading with this anchor in {file.name}")
    assert not bad, f"{page_id(page)}: " + "; ".join(bad)


#: Inline code that names a file or folder of the repository.
REPO_PATH = re.compile(r"(controller|sim|hw|configs|tests|docs)/[\w./*-]*")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_repository_path_named_in_code_exists(page):
    named = [span for span in INLINE_CODE.findall(prose(page.read_text()))
             if REPO_PATH.fullmatch(span)]
    missing = [span for span in named if not list(ROOT.glob(span))]
    assert not missing, f"{page_id(page)} names files that do not exist: {missing}"


def test_docs_index_links_every_page():
    index = ROOT / "docs" / "index.md"
    linked = {(index.parent / t.partition("#")[0]).resolve() for p, t in links() if p == index}
    missing = [page_id(p) for p in PAGES if p != index and p not in linked]
    assert not missing, f"docs/index.md does not link {missing}"


def test_the_checker_sees_broken_links_and_anchors(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A title: with `code`\n\n## A title: with `code`\n")
    assert anchors(page) == {"a-title-with-code", "a-title-with-code-1"}
    assert LINK.findall(INLINE_CODE.sub("", "see [x](a.md#b) and `[y](c.md)`")) == ["a.md#b"]


# --- commands -----------------------------------------------------------------------


def shell_commands(block: str) -> Iterator[list[str]]:
    """Each simple command of a shell block as argv, without redirections and comments."""
    block = block.replace("\\\n", " ")
    for line in block.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        skip_next = False
        for token in [*lexer, ";"]:
            if skip_next:
                skip_next = False
            elif token in (">", ">>", "<", "2>"):
                skip_next = True
            elif token in (";", "&&", "||", "|", "&", "(", ")"):
                while command and re.fullmatch(r"[A-Za-z_]\w*=.*", command[0]):
                    command.pop(0)
                if command:
                    yield command
                command = []
            else:
                command.append(token)


def shown_commands() -> Iterator[tuple[Path, list[str]]]:
    """Every command of every shell block of every page."""
    for page in PAGES:
        for block in shell_blocks(page.read_text()):
            for argv in shell_commands(block):
                yield page, argv


def module_invocation(argv: list[str]) -> tuple[str, list[str]] | None:
    """``python -m MODULE ARGS`` as (MODULE, ARGS), else None."""
    for i, token in enumerate(argv[:-2]):
        if re.fullmatch(r"(\S*/)?python(3[\d.]*)?", token) and argv[i + 1] == "-m":
            return argv[i + 2], argv[i + 3:]
    return None


def is_fes(token: str) -> bool:
    return token == "fes" or token.endswith("/bin/fes")


def parse_fes(argv: list[str]) -> str | None:
    """None when ``fes`` accepts argv (``--help`` included), else argparse's message."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            build_parser().parse_args(argv)
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                return err.getvalue().strip().splitlines()[-1]
    return None


def subcommand_options() -> dict[str, set[str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: set(p._option_string_actions) for name, p in sub.choices.items()}


def test_every_fes_command_in_a_shell_block_parses():
    shown = [(page, argv[1:]) for page, argv in shown_commands() if is_fes(argv[0])]
    assert len(shown) > 20  # the pages show that many; fewer means the extraction broke
    bad = [f"{page_id(page)}: fes {shlex.join(args)}: {problem}"
           for page, args in shown if (problem := parse_fes(args))]
    assert not bad, "\n".join(bad)


def inline_fes_commands() -> Iterator[tuple[Path, list[str]]]:
    for page in PAGES:
        for span in INLINE_CODE.findall(prose(page.read_text())):
            words = span.replace("\\|", " ").split()
            if len(words) > 1 and is_fes(words[0]) and not words[1].startswith("<"):
                yield page, words[1:]


def test_every_fes_command_in_inline_code_names_a_subcommand_and_its_options():
    options = subcommand_options()
    shown = list(inline_fes_commands())
    assert len(shown) > 20
    bad = []
    for page, words in shown:
        if words[0].startswith("-"):
            unknown = [w for w in words if w.startswith("-") and w not in ("--help", "-h")]
        elif words[0] not in options:
            unknown = [words[0]]
        else:
            unknown = [w for w in re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", " ".join(words))
                       if w not in options[words[0]]]
        if unknown:
            bad.append(f"{page_id(page)}: fes {' '.join(words)}: unknown {unknown}")
    assert not bad, "\n".join(bad)


def test_the_command_checkers_see_a_wrong_option():
    assert parse_fes(["sim", "--seed", "3"]) is None
    assert parse_fes(["sim", "--help"]) is None
    assert "--sedd" in (parse_fes(["sim", "--sedd", "3"]) or "")
    assert parse_fes(["simulate"]) is not None
    assert list(shell_commands("A=1 fes sim --out x > log && printf 'y' > f; echo # fes x")) == [
        ["fes", "sim", "--out", "x"], ["printf", "y"], ["echo"]]
    shown = [".venv/bin/python", "-m", "controller.bench.simulator", "--repeats", "1"]
    assert module_invocation(shown) == ("controller.bench.simulator", ["--repeats", "1"])


#: Run in a child interpreter: imports each module as ``__main__`` with
#: ``ArgumentParser.parse_args`` replaced by a trap, so the module builds its parser and
#: stops there; then parses every argument list shown with the real method.
PARSER_PROBE = r"""
import argparse, contextlib, io, json, runpy, sys

class Trapped(Exception):
    pass

real_parse = argparse.ArgumentParser.parse_args

def trap(self, args=None, namespace=None):
    raise Trapped(self)

argparse.ArgumentParser.parse_args = trap
result = {}
for module, argvs in json.load(sys.stdin).items():
    sys.argv = [module]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except Trapped as trapped:
        parser = trapped.args[0]
    else:
        result[module] = {"errors": ["ran to the end without parsing arguments"] * len(argvs)}
        continue
    errors = []
    for argv in argvs:
        err = io.StringIO()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                real_parse(parser, argv)
            errors.append(None)
        except SystemExit as exit_:
            message = err.getvalue().strip().splitlines()[-1:]
            errors.append(None if exit_.code in (0, None) else " ".join(message))
    result[module] = {"errors": errors, "options": sorted(parser._option_string_actions)}
print(json.dumps(result))
"""


def probe_parsers(argvs: dict[str, list[list[str]]]) -> dict[str, dict]:
    """Each project module's verdict on each argument list (see ``PARSER_PROBE``)."""
    proc = subprocess.run([sys.executable, "-c", PARSER_PROBE], input=json.dumps(argvs),
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def inline_module_commands() -> Iterator[tuple[Path, str, list[str]]]:
    for page in PAGES:
        for span in INLINE_CODE.findall(prose(page.read_text())):
            words = span.replace("\\|", " ").split()
            if (found := module_invocation(words)) is not None:
                yield page, *found


def test_every_python_module_shown_exists_and_takes_the_options_shown():
    blocks = [(page, *found) for page, argv in shown_commands()
              if (found := module_invocation(argv)) is not None]
    inline = list(inline_module_commands())
    assert len(blocks) > 10 and len(inline) > 10
    bad = []
    for page, module, args in [*blocks, *inline]:
        if importlib.util.find_spec(module) is None:
            bad.append(f"{page_id(page)}: python -m {module}: no such module")
        elif module.split(".")[0] not in PROJECT_PACKAGES:
            bad += [f"{page_id(page)}: python -m {module}: no file {a}" for a in args
                    if a.startswith("tests/") and not (ROOT / a).exists()]
    assert not bad, "\n".join(bad)

    ours = {m for _, m, _ in [*blocks, *inline] if m.split(".")[0] in PROJECT_PACKAGES}
    # Modules shown with arguments are probed; one shown bare only has to exist (running
    # a module that takes no arguments would run its whole job).
    argvs: dict[str, list[list[str]]] = {}
    for _, module, args in blocks:
        if module in ours and args:
            argvs.setdefault(module, []).append(args)
    for _, module, args in inline:
        if module in ours and args:
            argvs.setdefault(module, [])
    verdicts = probe_parsers(argvs)
    for module, shown in argvs.items():
        for args, error in zip(shown, verdicts[module]["errors"], strict=True):
            if error:
                bad.append(f"python -m {module} {shlex.join(args)}: {error}")
    for page, module, args in inline:
        if module in argvs:
            known = set(verdicts[module].get("options", []))
            bad += [f"{page_id(page)}: python -m {module}: unknown option {w}"
                    for w in re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", " ".join(args))
                    if w not in known]
    assert not bad, "\n".join(bad)


# --- pictures and tables -------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_picture_is_committed_and_made_by_commands_shown_beside_it(page):
    text = page.read_text()
    for link in re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", prose(text)):
        picture = (page.parent / link).resolve()
        assert picture.stat().st_size > 20_000, link
        from_root = picture.relative_to(ROOT).as_posix()
        made = re.search(rf"^cp runs/(\S+?)/report/\S+\.png {re.escape(from_root)}$", text,
                         re.MULTILINE)
        assert made, f"{page_id(page)}: no `cp runs/.../report/*.png {from_root}` shown"
        assert f"fes report runs/{made.group(1)}" in text, f"{page_id(page)}: {link}"


def test_exit_code_table_lists_every_exit_code():
    text = (ROOT / "docs" / "cli.md").read_text().split("## Exit codes", 1)[1]
    table = {int(code) for code in re.findall(r"^\| (\d+) \|", text, re.MULTILINE)}
    codes = {value for name, value in vars(common).items() if name.startswith("EXIT_")}
    assert table == codes
