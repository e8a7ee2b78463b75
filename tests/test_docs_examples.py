"""The guides' examples work: the example experiment script runs end to end on the shipped
agent, and every ``mazeinterp …`` command shown in a ```bash block of docs/*.md parses."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mazeinterp.checkpoints.registry import DEFAULT_AGENT, load_policy
from mazeinterp.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCRIPT = DOCS / "examples" / "ablation_experiment.py"

N_MAZES = 3
TOP_K = 2
TINY = ["--n-mazes", str(N_MAZES), "--max-steps", "15", "--top-k", str(TOP_K),
        "--discovery-mazes", "6", "--reference-mazes", "6"]


def _run_script(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *TINY, "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("ablation") / "run"
    return _run_script(out), out


def test_example_script_writes_sensible_numbers(first_run) -> None:
    proc, out = first_run
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())

    assert result["n_mazes"] == N_MAZES
    diff = result["difference"]
    assert diff["n"] == N_MAZES
    for key in ("p_cheese_baseline", "p_cheese_ablated"):
        assert 0.0 <= result[key] <= 1.0
    assert diff["estimate"] == pytest.approx(result["p_cheese_ablated"] - result["p_cheese_baseline"])
    assert -1.0 <= diff["low"] <= diff["estimate"] <= diff["high"] <= 1.0
    for summary in (result["baseline"], result["ablated"]):
        assert summary["n"] == N_MAZES
        assert sum(summary["counts"].values()) == N_MAZES
        for outcome, p in summary["proportions"].items():
            low, high = summary["intervals"][outcome]
            assert 0.0 <= low <= p <= high <= 1.0

    n_channels = load_policy(DEFAULT_AGENT).hook_points()[result["layer"]][0]
    channels = result["channels"]
    assert len(channels) == TOP_K and len(set(channels)) == TOP_K
    assert all(isinstance(c, int) and 0 <= c < n_channels for c in channels)
    assert [row["channel"] for row in result["channel_table"]] == channels
    assert "paired difference" in proc.stdout


def test_example_script_never_overwrites(first_run) -> None:
    proc, out = first_run
    assert proc.returncode == 0, proc.stderr
    path = out / "result.json"
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns

    again = _run_script(out)
    assert again.returncode != 0
    message = again.stderr.strip().splitlines()
    assert message and "already exist" in message[-1] and "--overwrite" in message[-1], again.stderr
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


def _documented_commands() -> list[str]:
    """Every line of a ```bash block in docs/*.md that starts with ``mazeinterp `` (continuations joined)."""
    commands = []
    for md in sorted(DOCS.glob("*.md")):
        for block in re.findall(r"```bash\n(.*?)```", md.read_text(), flags=re.S):
            text = re.sub(r"\\\n\s*", " ", block)
            commands += [f"{md.name}: {line.strip()}" for line in text.splitlines()
                         if line.strip().startswith("mazeinterp ")]
    return commands


COMMANDS = _documented_commands()


def test_the_guides_show_commands() -> None:
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize("where_and_command", COMMANDS, ids=[c[:80] for c in COMMANDS])
def test_documented_command_parses(where_and_command: str) -> None:
    command = where_and_command.split(": ", 1)[1]
    tokens = shlex.split(command, comments=True)[1:]
    parser = build_parser()
    try:
        parser.parse_args(tokens)
    except SystemExit as exc:
        if exc.code == 0 and ("--help" in tokens or "-h" in tokens):
            return
        pytest.fail(f"{where_and_command!r} does not parse (exit status {exc.code})")


# ----- the guides' Python blocks run, and print what they show ------------------------------
#
# Every ```python block of README.md and docs/*.md runs, the blocks of one file in order in one
# namespace (as a reader pastes them into one session), in a scratch folder. What a block shows
# it prints is checked (``...`` matches anything):
#
# * a ```text block right after a ```python block is the whole block's output;
# * a comment after a ``print(...)`` call on its last line, and any comment lines right below
#   it, are that call's output (a comment that is not output goes on a line of its own).
#
# A block that opens with ``# excerpt of PATH`` quotes a script that the suite runs elsewhere:
# it is checked to appear verbatim in that script instead of being run.

import ast
import contextlib
import doctest
import io

import tokenize

GUIDES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
# Guides whose Python reads files that one of their commands wrote. There, each ```bash block of
# ``mazeinterp ...`` lines with a ```text block right after it runs too, in order with the Python
# blocks, and must print what the text block shows (other guides' commands are only parsed).
RUNS_ITS_COMMANDS = {"getting-started.md"}
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_CHECKER = doctest.OutputChecker()
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _python_blocks(md: Path) -> list[tuple[int, str, str | None]]:
    """(line in the file, code, the ```text block right after it or None) for each ```python block."""
    return [(line, code, shown) for line, _, code, shown in _blocks(md, ("python",))]


def _blocks(md: Path, languages: tuple[str, ...]) -> list[tuple[int, str, str, str | None]]:
    """(line in the file, language, code, the ```text block right after it or None) per block."""
    text = md.read_text()
    fences = list(_FENCE.finditer(text))
    out = []
    for i, fence in enumerate(fences):
        if fence.group(1) not in languages:
            continue
        shown = None
        if i + 1 < len(fences) and fences[i + 1].group(1) == "text" \
                and not text[fence.end():fences[i + 1].start()].strip():
            shown = fences[i + 1].group(2)
        out.append((text.count("\n", 0, fence.start()) + 2, fence.group(1), fence.group(2), shown))
    return out


def _comments(code: str) -> dict[int, str]:
    """Line number → the text of its comment (without ``# ``)."""
    found = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            found[tok.start[0]] = tok.string[1:].strip()
    return found


def _shown_outputs(code: str) -> list[tuple[int, int, str]]:
    """(first line, last line, shown output) of each print call whose output the block shows."""
    comments = _comments(code)
    lines = code.splitlines()
    shown = []
    for node in ast.walk(ast.parse(code)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"):
            continue
        end = node.end_lineno
        if end not in comments:
            parts = []
        else:
            parts = [comments[end]]
        below = end + 1
        while below <= len(lines) and lines[below - 1].strip().startswith("#"):
            parts.append(comments[below])
            below += 1
        if parts:
            shown.append((node.lineno, end, "\n".join(parts)))
    return shown


def _run_block(code: str, namespace: dict, name: str) -> tuple[str, dict[int, list[str]]]:
    """Run ``code`` in ``namespace``; return all it printed and what each print line printed."""
    everything = io.StringIO()
    by_line: dict[int, list[str]] = {}

    def recording_print(*args, sep=" ", end="\n", file=None, flush=False):
        if file is not None and file is not sys.stdout:
            return print(*args, sep=sep, end=end, file=file, flush=flush)
        text = sep.join(str(a) for a in args) + end
        everything.write(text)
        by_line.setdefault(sys._getframe(1).f_lineno, []).append(text)
        return None

    namespace["print"] = recording_print
    exec(compile(code, name, "exec"), namespace)
    return everything.getvalue(), by_line


def _run_commands(code: str, where: str) -> str:
    """Run each ``mazeinterp ...`` line of a shell block in-process; return what they printed."""
    from mazeinterp.cli import main

    printed = io.StringIO()
    for command in code.splitlines():
        tokens = shlex.split(command, comments=True)
        if not tokens:
            continue
        assert tokens[0] == "mazeinterp", f"{where}: only mazeinterp commands can run here: {command!r}"
        with contextlib.redirect_stdout(printed):
            status = main(tokens[1:])
        assert status in (0, None), f"{where}: {command!r} exited with {status}"
    return printed.getvalue()


def _excerpt_source(code: str) -> Path | None:
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    match = re.fullmatch(r"#\s*excerpt of (\S+)", first.strip())
    return ROOT / match.group(1) if match else None


def _quotes(excerpt: list[str], source: list[str]) -> bool:
    """Whether the excerpt's lines appear one after another in the source (indentation aside)."""
    want = [line.strip() for line in excerpt]
    have = [line.strip() for line in source]
    return any(have[i : i + len(want)] == want for i in range(len(have) - len(want) + 1))


@pytest.fixture()
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("md", GUIDES, ids=lambda p: str(p.relative_to(ROOT)))
def test_guide_python_blocks_run_and_print_what_they_show(md: Path, scratch: Path) -> None:
    runs_commands = md.name in RUNS_ITS_COMMANDS
    blocks = _blocks(md, ("python", "bash") if runs_commands else ("python",))
    namespace: dict = {"__name__": "__guide__"}
    wrong: list[str] = []
    for line, language, code, shown in blocks:
        where = f"{md.name}:{line}"
        if language == "bash":
            if shown is not None:
                printed = _run_commands(code, where)
                if not _CHECKER.check_output(shown.strip() + "\n", printed.strip() + "\n", _FLAGS):
                    wrong.append(f"{where}: printed\n{printed}\nbut the guide shows\n{shown}")
            continue
        source = _excerpt_source(code)
        if source is not None:
            assert _quotes(code.strip().splitlines()[1:], source.read_text().splitlines()), \
                f"{where}: the excerpt is not in {source.name}"
            continue
        try:
            printed, by_line = _run_block(code, namespace, where)
        except Exception as exc:
            pytest.fail(f"{where}: {type(exc).__name__}: {exc}")
        if shown is not None and not _CHECKER.check_output(shown.strip() + "\n", printed.strip() + "\n", _FLAGS):
            wrong.append(f"{where}: printed\n{printed}\nbut the guide shows\n{shown}")
        for first, last, expected in _shown_outputs(code):
            got = "".join(text for n in range(first, last + 1) for text in by_line.get(n, []))
            if not _CHECKER.check_output(expected.strip() + "\n", got.strip() + "\n", _FLAGS):
                wrong.append(f"{where}, line {first}: printed {got.strip()!r}, the guide shows {expected!r}")
    assert not wrong, "\n\n".join(wrong)


def test_every_guide_with_python_is_covered() -> None:
    assert sum(len(_python_blocks(md)) for md in GUIDES) >= 20
