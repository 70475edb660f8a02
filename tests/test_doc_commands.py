"""Every command in the README and docs/ is one a user can run: the read-only ones run, the rest
are parsed by the real parser, their recipes, objectives, environments, options and values
resolved, the scripts and files they name found, their flags known to the script, the extras
they install declared. The plugin package of docs/plugins.md is built from the page, installed
and used."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agentrl.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNS = ("list", "show", "--help", "--version")  # read-only commands: run for real
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$|<[^>]*>")
NUMBERS = {"N": "2", "K": "4", "M": "2", "R": "0"}  # placeholders of integer options


def bash_lines(text: str) -> list[str]:
    """The commands of a page's ``bash`` blocks, one per line, ``\\``-continuations joined."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        lines += [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return lines


def commands(text: str) -> list[list[str]]:
    """Every command of a page: its bash blocks' lines, split at ``&&``, comments dropped, and the
    inline code spans that start with ``agentrl ``."""
    found = []
    for line in bash_lines(text):
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            found.append(words[:cut])
            words = words[cut + 1 :]
    spans = re.findall(r"`(agentrl [^`]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
    return [c for c in found if c] + [shlex.split(span) for span in spans]


def all_commands() -> list[tuple[str, list[str]]]:
    return [(page.name, command) for page in PAGES for command in commands(page.read_text())]


def _extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["optional-dependencies"])


def check_pip(args: list[str]) -> None:
    """pip install: every extra of agentrl it names is declared."""
    for word in args:
        match = re.fullmatch(r"(?:agentrl|\.)\[([\w,-]+)\]", word)
        if match:
            unknown = set(match.group(1).split(",")) - _extras()
            assert not unknown, f"pip installs extras that pyproject.toml does not declare: {unknown}"


def check_script(path: str, args: list[str]) -> None:
    """A script in scripts/: it exists, and every ``--flag`` given is one it (or a script module
    it imports) defines."""
    script = ROOT / path
    assert script.is_file(), f"{path} does not exist"
    source = script.read_text()
    if script.suffix == ".sh":  # a shell wrapper passes its flags to the Python script beside it
        sibling = script.with_suffix(".py")
        source += sibling.read_text() if sibling.exists() else ""
    for module in re.findall(r"^(?:from|import) (\w+)", source, re.MULTILINE):
        if (ROOT / "scripts" / f"{module}.py").exists():
            source += (ROOT / "scripts" / f"{module}.py").read_text()
    for flag in [a.split("=")[0] for a in args if a.startswith("--")]:
        assert f'"{flag}"' in source, f"{path} has no option {flag}"


def check_python(args: list[str]) -> None:
    if args[:2] == ["-m", "venv"] or args[:2] == ["-m", "build"]:
        return
    if args[:2] == ["-m", "pytest"]:
        markers = {
            m.split(":")[0]
            for m in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
        }
        for expression in [args[i + 1] for i, a in enumerate(args) if a == "-m" and i > 0 and i + 1 < len(args)]:
            words = set(re.findall(r"\w+", expression)) - {"not", "and", "or"}
            assert words <= markers, f"pytest -m {expression!r} names markers that are not registered"
        return
    if args[0] == "-m":
        module = args[1]
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, f"python -m {module}: no such module"
        source = Path(spec.origin).read_text()
        for flag in [a for a in args[2:] if a.startswith("--")]:
            assert f'"{flag}"' in source, f"python -m {module} has no option {flag}"
        return
    check_script(args[0], args[1:])


def _concrete(args: list[str]) -> tuple[list[str], bool]:
    """The arguments with placeholders filled where a parser needs a value (``N`` -> 2), and
    whether any placeholder is left (then names and values are not resolved)."""
    out, placeholders = [], False
    for word in args:
        if word == "...":
            placeholders = True
            continue
        key, equals, value = word.rpartition("=")
        if word in NUMBERS or (equals and value in NUMBERS):
            word, placeholders = (key + equals if equals else "") + NUMBERS[value if equals else word], True
        elif PLACEHOLDER.search(word) or "VALUE" in word:
            placeholders = True
        out.append(word)
    return out, placeholders


def check_agentrl(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    if args and PLACEHOLDER.search(args[0]):  # agentrl COMMAND --help
        return
    args, placeholders = _concrete(args)
    if any(a in RUNS for a in args[:3]) and args[0] != "show" and not placeholders:  # `agentrl show` reads a run
        with pytest.raises(SystemExit) if {"--help", "--version"} & set(args) else _nothing():
            code = main(args)
            assert code == 0, f"agentrl {shlex.join(args)} exited {code}: {capsys.readouterr().err}"
        return
    mention = len(args) <= 2 and not any(a.startswith("-") for a in args)  # prose naming `agentrl eval`
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit:
        err = capsys.readouterr().err
        if mention and "are required" in err:
            return
        pytest.fail(f"agentrl {shlex.join(args)} does not parse: {err}")
    if placeholders:
        return
    if parsed.command == "train" and not parsed.resume:
        from agentrl.algos import get as algorithm
        from agentrl.cli.train_cmd import _config_and_run_dir
        from agentrl.envs import load as spec_of

        if parsed.config and parsed.config.endswith(".yaml") and not Path(parsed.config).exists():
            return  # a file of the reader's own (run.yaml)
        config, _ = _config_and_run_dir(parsed, leads=False)
        spec_of(config.env)
        if ":" not in config.algo:  # a plugin's path is the reader's own module
            algorithm(config.algo)
    elif parsed.command in ("eval", "envs") and getattr(parsed, "env", None):
        from agentrl.envs import load as spec_of

        if ":" not in parsed.env:
            spec_of(parsed.env)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def check(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """One command, by what it runs."""
    program, args = command[0], command[1:]
    if program == "sudo":
        program, args = args[0], args[1:]
    name = Path(program).name
    if name == "agentrl":
        check_agentrl(args, capsys)
    elif name == "torchrun":
        check_agentrl(args[args.index("agentrl") + 1 :], capsys)
    elif name in ("python", "python3"):
        check_python(args)
    elif name == "pip":
        check_pip(args)
    elif name == "bash":
        check_script(args[0], args[1:])
    elif program.startswith("scripts/"):
        check_script(program, args)
    elif name in ("source", "ruff", "wandb"):
        return
    else:
        pytest.fail(f"a documented command this test does not know how to check: {shlex.join(command)}")


@pytest.mark.parametrize(("page", "command"), all_commands(), ids=lambda x: x if isinstance(x, str) else shlex.join(x))
def test_documented_command(page, command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # as a user runs them, not from the clone
    check(command, capsys)


WRONG = [
    (["agentrl", "train", "--env", "math_tool", "--algo", "grpoo"], "unknown algorithm 'grpoo'"),
    (["agentrl", "train", "--config", "no_such_recipe"], "no recipe or file named 'no_such_recipe'"),
    (["agentrl", "train", "--set", "learner.lrr=1e-4"], "unknown option 'lrr'"),
    (["agentrl", "eval", "--env", "math_tol", "--model", "x"], "unknown environment 'math_tol'"),
    (["agentrl", "train", "--stepz", "3"], "does not parse"),
    (["agentrl", "algos", "show", "nope"], "exited 2"),
    (["python", "scripts/bench_algos.py", "--no-such-flag"], "has no option --no-such-flag"),
    (["python", "scripts/no_such_script.py"], "does not exist"),
    (["pip", "install", "agentrl[nope]"], "does not declare"),
    (["python", "-m", "pytest", "-m", "not slowly"], "not registered"),
    (["make", "all"], "does not know how to check"),
]


@pytest.mark.parametrize(("command", "reason"), WRONG, ids=lambda x: shlex.join(x) if isinstance(x, list) else None)
def test_the_checks_catch_a_typo(command, reason, capsys):
    with pytest.raises(BaseException, match=re.escape(reason)):
        check(command, capsys)


def test_commands_are_found_in_blocks_and_spans():
    assert commands(
        "```bash\nagentrl envs list && agentrl algos list   # both\n```\nand `agentrl plot runs/<name>`"
    ) == [
        ["agentrl", "envs", "list"],
        ["agentrl", "algos", "list"],
        ["agentrl", "plot", "runs/<name>"],
    ]


# ---- docs/plugins.md, built and used as a package


def plugin_files() -> dict[str, str]:
    """The files of docs/plugins.md's package, by the name on each block's first line."""
    text = (ROOT / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```(?:python|toml)\n# ([\w.]+)\n(.*?)```", text, re.DOTALL)
    return {name: body for name, body in blocks}


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    files = plugin_files()
    assert set(files) == {"pyproject.toml", "my_envs.py", "my_tools.py", "my_algos.py"}
    src = tmp_path_factory.mktemp("my-agentrl-ext")
    for name, body in files.items():
        (src / name).write_text(body)
    site = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*pip, "--target", str(site), str(src)], check=True, capture_output=True)
    return site


def run_with(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "agentrl.cli.main", *args], capture_output=True, text=True, env=env)


def test_the_plugin_package_registers_its_environment_and_tool(plugin_site):
    envs = run_with(plugin_site, "envs", "list")
    assert re.search(r"^echo +my-agentrl-ext +Say the word you are given\.$", envs.stdout, re.MULTILINE), envs
    tools = run_with(plugin_site, "tools", "list")
    assert re.search(r"^reverse +my-agentrl-ext +Reverse a piece of text\.", tools.stdout, re.MULTILINE), tools
    checked = run_with(plugin_site, "envs", "check", "echo")
    assert checked.returncode == 0 and "passed check_env" in checked.stdout, checked.stderr


def test_the_plugin_tool_and_objective_work(plugin_site, monkeypatch):
    """The tool answers and refuses as the page says; the objective, named by its path as
    ``--algo`` takes it, gives a finite loss with a gradient on a batch of the contract tests."""
    import torch

    from agentrl.algos import make
    from agentrl_tools.base import ToolCall, run_tool

    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "algos"))
    from batches import counts_of, leaf_inputs, make_batch, prepared

    tool = __import__("my_tools").Reverse()
    assert run_tool(tool, ToolCall("reverse", {"text": "abc"})).output == "cba"
    refused = run_tool(tool, ToolCall("reverse", {"text": "x" * 1001}))
    assert refused.status == "error" and "longer than 1000" in refused.output

    algo = make("my_algos:ScaledReinforce")
    batch = prepared(algo, make_batch())
    inputs = leaf_inputs(batch)
    loss = algo.loss(inputs, batch, counts_of(algo, batch)).loss
    loss.backward()
    assert torch.isfinite(loss) and inputs.logprobs.grad.abs().sum() > 0
