"""``agentrl view`` in a real browser: Debian's Chromium driven by Playwright against the real
command (``agentrl view RUN EVAL TOY --port 0``), on a run and an evaluation made here with
the shipped model, plus a made-up run (``view_stores``) whose clipped and filtered tokens are
known. Loads the page, follows a click on a curve point to its step's episodes, filters the
table, opens an episode, switches the shading, hovers a token and reads its number against the
store, compares two steps of one task side by side; Ctrl-C then stops the server cleanly.

A screenshot of each view is kept (in $AGENTRL_ARTIFACTS when set, else the test's temporary
folder) and checked: not blank, and its text on the page. Skipped where /usr/bin/chromium or
playwright is missing, unless AGENTRL_REQUIRE_BROWSER=1 (CI), where that fails instead;
``scripts/setup_browser.sh`` installs Chromium, ``pip install -e '.[test]'`` playwright.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from view_stores import CLIPPED_AT, FILTERED_AT, write_run, write_step

from agentrl.episodes import EpisodeStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = Path("/usr/bin/chromium")
AGENTRL = [sys.executable, "-m", "agentrl.cli.main"]


def missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (scripts/setup_browser.sh installs it)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-step GRPO run with held-out evaluations at steps 0, 1 and 2, an evaluation of the
    shipped model, and the made-up run; the two real ones made at once."""
    if (why := missing()) is not None:
        (pytest.fail if os.environ.get("AGENTRL_REQUIRE_BROWSER") == "1" else pytest.skip)(why)
    root = tmp_path_factory.mktemp("view")
    train = [*AGENTRL, "train", "--env", "math_tool", "--algo", "grpo", "--steps", "2", "--set", "eval_every=1",
             "--set", "eval_tasks=8", "--set", "tasks_per_step=4", "--set", "group_size=4", "--no-progress",
             "--runs-dir", str(root), "--name", "a"]  # fmt: skip
    evaluate = [*AGENTRL, "eval", "--env", "math_tool", "-n", "8", "--output", str(root / "ev"), "--no-progress"]
    output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    jobs = [subprocess.Popen(command, cwd=root, **output) for command in (train, evaluate)]
    for job in jobs:
        out, _ = job.communicate(timeout=240)
        assert job.returncode == 0, out[-3000:]
    return {"a": root / "a", "ev": root / "ev", "toy": write_run(root / "toy")}


@pytest.fixture(scope="module")
def url(folders: dict[str, Path]) -> Iterator[str]:
    """The real command serving the three folders on a free port; stopped with Ctrl-C (SIGINT)."""
    server = subprocess.Popen([*AGENTRL, "view", *map(str, folders.values()), "--port", "0"], cwd=folders["a"].parent,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    line = server.stdout.readline() if server.stdout else ""
    found = re.search(r"http://\S+/", line)
    if found is None:
        server.kill()
        pytest.fail(f"agentrl view printed no URL: {line!r} {server.communicate()[1][-3000:]}")
    yield found.group(0)
    server.send_signal(signal.SIGINT)
    out, err = server.communicate(timeout=30)
    assert server.returncode == 0 and "stopped" in out and "Traceback" not in err, err[-3000:]


@pytest.fixture(scope="module")
def page(url: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        yield page
        browser.close()
    assert errors == [], f"the page logged errors: {errors}"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("AGENTRL_ARTIFACTS")
    folder = Path(given) if given else tmp_path_factory.mktemp("shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def snapshot(page: Any, folder: Path, name: str, texts: list[str]) -> None:
    """A screenshot of the view kept as ``view-NAME.png``: not blank, and ``texts`` on the page."""
    from PIL import Image, ImageStat

    path = folder / f"view-{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # a full-page shot of a scrolled page draws the sticky header mid-page
    page.screenshot(path=str(path), full_page=True)
    spread = ImageStat.Stat(Image.open(path).convert("L")).stddev[0]
    assert spread > 15, f"{path} looks blank (pixel spread {spread:.1f})"
    body = page.inner_text("body")
    for text in texts:
        assert text in body, f"{text!r} is not on the page ({path})"
    slip = re.search(r"\b(undefined|null|NaN|\[object Object\])\b", body)
    assert slip is None, f"the page shows a JavaScript value as text: {slip.group(0) if slip else ''} ({path})"


def count(page: Any) -> int:
    match = re.search(r"of ([\d,]+) episodes", page.inner_text("#count"))
    assert match, page.inner_text("#count")
    return int(match.group(1).replace(",", ""))


def test_curves_lead_to_their_steps_episodes_and_the_table_filters(page, url, folders, artifacts):
    rows = EpisodeStore(folders["a"]).rows()
    page.goto(url)
    page.wait_for_selector("svg[data-panel=reward] path")
    page.wait_for_selector("#table tbody tr")
    total = sum(len(EpisodeStore(f).rows()) for f in folders.values())
    assert count(page) == total
    snapshot(page, artifacts, "curves-and-table", ["a (run", "ev (eval", "reward (mean reward per", "Episodes"])
    page.click("[data-source=a] svg[data-panel=accuracy] circle[data-key='eval/accuracy'][data-step='2']")
    page.wait_for_function("location.hash.includes('step=2') && location.hash.includes('split=eval')")
    evals = sum(r["step"] == 2 and r["split"] == "eval" for r in rows)
    page.wait_for_function(f"document.querySelector('#count').textContent.includes('of {evals} ')")
    assert set(page.locator("#table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.source)")) == {"a"}
    page.click("#clear")
    page.select_option("select[name=source]", "a")
    page.select_option("select[name=split]", "train")
    page.fill("input[name=reward_min]", "1")
    page.press("input[name=reward_min]", "Enter")
    expected = sum(r["split"] == "train" and r["reward"] >= 1 for r in rows)
    page.wait_for_function(f"document.querySelector('#count').textContent.includes('of {expected} ')")
    rewards = page.locator("#table tbody tr td:nth-child(7)").all_inner_texts()
    assert rewards and all(float(r) >= 1 for r in rewards)
    snapshot(page, artifacts, "filtered-table", [f"of {expected} episodes", "train"])


def test_an_episode_shows_its_turns_and_each_tokens_numbers(page, url, folders, artifacts):
    store = EpisodeStore(folders["a"])
    trained = [r for r in store.rows() if r["split"] == "train" and r["has_learner"]]
    chosen = max(trained, key=lambda r: r["tool_calls"] > 0)  # one that called the calculator, if any did
    page.goto(f"{url}#/?source=a&split=train&task_id={chosen['task_id']}&step={chosen['step']}")
    page.click(f"#table tbody tr[data-source=a][data-id='{chosen['id']}']")
    page.wait_for_selector(f".pane[data-source=a][data-id='{chosen['id']}'] .stream .tok.s")
    record = store.episode(chosen["id"])
    assert page.locator(".message.assistant").count() == sum(m["role"] == "assistant" for m in record["messages"])
    if record["tool_calls"]:  # the tool call under its turn, with its status and time
        assert "calculator(" in page.inner_text(".pane") and " ms" in page.inner_text(".pane .call")
    text = page.inner_text(".stream")
    assert text == "".join(record["tokens"]["pieces"])  # token-exact
    index = record["tokens"]["mask"].index(1) + 1
    token = page.locator(f".stream .tok[data-i='{index}']")
    before = token.evaluate("e => e.style.backgroundColor")
    page.select_option("#shade", "advantage")
    assert token.evaluate("e => e.style.backgroundColor") != before
    token.hover()
    shown = page.inner_text(".tokinfo [data-q=advantage]").split()[-1]
    assert float(shown) == pytest.approx(record["learner"]["advantage"][index], rel=1e-5, abs=1e-9)
    for quantity in ("logprob", "entropy", "ratio", "weight", "behavior_logprob"):
        shown = page.inner_text(f".tokinfo [data-q={quantity}]").split()[-1]
        where = record["tokens"] if quantity == "behavior_logprob" else record["learner"]
        assert float(shown) == pytest.approx(where[quantity][index], rel=1e-5, abs=1e-9), quantity
    assert page.inner_text(".tokinfo [data-q=id]").split()[-1] == str(record["tokens"]["ids"][index])
    snapshot(page, artifacts, "episode", ["Conversation", "Tokens", "advantage", chosen["id"], record["task_id"]])


def test_two_steps_of_a_task_side_by_side_and_a_run_beside_an_eval(page, url, folders, artifacts):
    page.goto(f"{url}#/episode/a/eval-0-0")
    page.wait_for_selector(".pane[data-source=a][data-id='eval-0-0'] .compare-with a")  # not the last view's
    task = EpisodeStore(folders["a"]).episode("eval-0-0")["task_id"]
    assert "same task in ev, eval steps" in page.inner_text(".compare-with")  # the evaluation ran the same tasks
    page.click(".compare-with a[data-source=a][data-split=eval][data-step='2']")
    page.wait_for_selector("#panes.two .pane:nth-child(2) .stream .tok")
    panes = page.locator(".pane").evaluate_all("ps => ps.map(p => [p.dataset.source, p.dataset.id])")
    assert panes[0] == ["a", "eval-0-0"] and panes[1][0] == "a" and panes[1][1].startswith("eval-2-")
    assert EpisodeStore(folders["a"]).episode(panes[1][1])["task_id"] == task
    snapshot(page, artifacts, "compare-steps", ["eval step 0", "eval step 2", task])
    page.goto(f"{url}#/episode/a/eval-0-0")
    page.click(".pane[data-id='eval-0-0'] .compare-with a[data-source=ev][data-step='0']")
    page.wait_for_selector("#panes.two .pane[data-source=ev] .stream .tok")
    snapshot(page, artifacts, "compare-run-and-eval", ["ev", task])


def test_clipped_and_filtered_tokens_are_marked(page, url, artifacts):
    page.goto(f"{url}#/episode/toy/train-2-2")
    page.wait_for_selector(".pane[data-source=toy][data-id='train-2-2'] .stream .tok")
    assert "clipped" in page.locator(f".tok[data-i='{CLIPPED_AT}']").get_attribute("class")
    legend = page.inner_text("#legend")
    assert "clipped (weight 0)" in legend and "filtered (not in the loss)" in legend
    page.goto(f"{url}#/compare/toy/train-2-1/toy/train-1-3")
    page.wait_for_selector("#panes.two .pane[data-id='train-1-3'] .stream .tok")
    assert "filtered" in page.locator(f".pane:nth-child(1) .tok[data-i='{FILTERED_AT}']").get_attribute("class")
    page.select_option("#shade", "entropy")
    page.locator(".pane:nth-child(2) .tok[data-i='6']").hover()
    assert page.inner_text(".pane:nth-child(2) .tokinfo [data-q=entropy]").split()[-1] == "nan"
    snapshot(page, artifacts, "marks", ["filtered (not in the loss)", "train-2-1", "train-1-3"])


def test_a_step_written_while_it_serves_shows_after_a_reload(page, url, folders):
    page.goto(f"{url}#/?source=toy")
    page.wait_for_function("document.querySelector('#count').textContent.includes('of 38 ')")
    write_step(folders["toy"], 4, "train", 5)
    page.click("#refresh")
    page.wait_for_function("document.querySelector('#count').textContent.includes('of 43 ')")
    assert "toy (run, 43 episodes)" in page.inner_text("#sources")
