"""``agentrl view`` in a real browser: Debian's Chromium driven by Playwright against the real
command (``agentrl view RUN EVAL TOY "MY RUN" --port 0``), on a run and an evaluation made here with
the shipped model, plus a made-up run (``view_stores``) whose clipped and filtered tokens are
known, and that run again as "my run" (a name with a space) with NaN curves and control
characters in what its model wrote. Loads the page, follows a click on a curve point to its
step's episodes, filters the table, opens an episode, switches the shading, hovers a token and
reads its number against the store, compares two steps of one task side by side; then the
edges: a NaN point's mark and an all-NaN panel's note, escapes shown for ESC (\\x1b) and U+202E, the
shading chosen kept past an evaluation, an offset past the end and a refused query, sorting,
opening and moving along a chart by keyboard, a 390 px window; Ctrl-C then stops the server.

A screenshot of each view is kept (in $AGENTRL_ARTIFACTS when set, else the test's temporary
folder) and checked: not blank, and its text on the page. Skipped where /usr/bin/chromium or
playwright is missing, unless AGENTRL_REQUIRE_BROWSER=1 (CI), where that fails instead;
``scripts/setup_browser.sh`` installs Chromium, ``pip install -e '.[test]'`` playwright.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from view_stores import CLIPPED_AT, FILTERED_AT, VOCAB, Tokenizer, learner, trajectory, write_run, write_step

from agentrl.episodes import EpisodeStore, EpisodeWriter, records

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
    return {"a": root / "a", "ev": root / "ev", "toy": write_run(root / "toy"), "odd": write_odd_run(root / "my run")}


ESC, RLO = "\x1b", "\u202e"  # a terminal escape and a right-to-left override, as a model may sample them


class OddTokenizer(Tokenizer):
    def batch_decode(self, ids: list[list[int]], skip_special_tokens: bool = False) -> list[str]:
        odd = {20: f"{ESC}[31m", 21: f"{RLO} is 4."}
        return [odd.get(i[0]) or VOCAB[i[0]] for i in ids]


def write_odd_run(run: Path) -> Path:
    """The made-up run again under a name with a space, with a metrics.jsonl of non-finite values
    (reward NaN at every step, entropy NaN at step 2, an ESS of float noise around 1, step 5 logged
    but its episodes not kept: after step 4 the run keeps every second step's), and a step 4 whose
    model wrote control characters: a terminal escape in a message, a token, the answer and a tool
    call, a bidi override in a task id."""
    write_run(run)
    for step in range(6, 21, 2):  # then every second step kept (episodes_every 2): step 5 was not
        write_step(run, step, "train", 4)
    nan = float("nan")
    entropy_ess = [(1.0, 0.99999994), (nan, 1.0000001), (0.33, 1.0), (0.3, 0.99999997), (0.2, 1.0)]
    lines = [{"step": 0, "eval/accuracy": 0.25}] + [
        {"step": s, "rollout/reward_mean": nan, "policy/entropy": e, "offpolicy/ess_frac": ess}
        for s, (e, ess) in enumerate(entropy_ess, 1)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    odd = []
    for i in range(4):
        t = trajectory(4, i, "train")
        t.token_ids = [*t.token_ids[:15], 20, 21]
        t.messages = [*t.messages[:3], {"role": "assistant", "content": f"{ESC}[31mThe answer{RLO} is 4."}]
        t.answer = f"{ESC}[2J4"
        t.info["tool_log"][0]["calls"][0]["arguments"] = {"expression": f"2+2{RLO}"}
        t.info["tool_log"][0]["seconds"] = 8.26e-6
        if i == 1:
            t.task_id = t.group_id = f"task-{RLO}1"
        odd.append(t)
    stored = records(odd, OddTokenizer(), step=4, split="train", learner=[learner(t, i) for i, t in enumerate(odd)])
    EpisodeWriter(run / "episodes").write(4, "train", stored)
    return run


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
        refused = re.compile(r"Failed to load resource: the server responded with a status of (400|404|422)")
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" and not refused.match(m.text) else None)
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
    page.click("details[data-source=ev] summary")  # an evaluation: its numbers and what made it
    made = page.inner_text("details[data-source=ev] .made-by")
    assert "model" in made and "max_new_tokens 256" in made and "temperature 1" in made
    assert "accuracy" in page.inner_text("details[data-source=ev] summary")
    page.click("details[data-source=ev] summary")
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
        assert "calculator(" in page.inner_text(".pane")
        assert re.search(r"\d (ns|µs|ms|s|min)$", page.inner_text(".pane .call"))  # a duration as read: 8.3 µs, 12 ms
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


def test_non_finite_curves_show_a_gap_a_mark_and_a_note(page, url, artifacts):
    page.goto(url)
    block = page.locator("details[data-source='my run']")
    page.wait_for_selector("details[data-source=a][open] svg[data-panel=reward] path")
    assert not block.evaluate("b => b.open")  # folded: only the first run's curves are open
    block.locator("summary").click()
    chart = block.locator("svg[data-panel=entropy]")
    chart.wait_for()
    assert chart.locator(".nonfinite[data-step='2'][data-value=nan]").count() == 1  # the red x at the edge
    assert chart.locator("path[data-key='policy/entropy']").get_attribute("d").count("M") == 2  # a gap, not a join
    reward = block.locator("svg[data-panel=reward]")
    assert "no finite values:" in reward.text_content() and "nan at steps 1, 2, 3, 4, 5" in reward.text_content()
    ess = block.locator("svg[data-panel=offpolicy_ess]")
    assert ess.locator("text").all_text_contents() == ["1", "1", "2", "3", "4", "5"]  # flat at 1, no float noise
    assert "flat at 1" in block.locator(".panel:has(svg[data-panel=offpolicy_ess])").inner_text()
    assert block.locator(".ptitle[title='offpolicy_ess (ESS / batch size)']").count() == 1
    chart.focus()  # the keyboard: Home, then the arrow keys move the read-out, Enter opens the step
    readout = block.locator(".panel:has(svg[data-panel=entropy]) .readout")
    page.keyboard.press("Home")
    assert readout.inner_text().startswith("step 1: policy/entropy 1")
    page.keyboard.press("ArrowRight")
    assert readout.inner_text() == "step 2: policy/entropy nan"
    snapshot(page, artifacts, "non-finite-curves", ["no finite values:", "step 2: policy/entropy nan", "my run"])
    page.keyboard.press("End")
    page.keyboard.press("Enter")  # step 5 was logged, its episodes not kept
    page.wait_for_function("location.hash.includes('step=5')")
    kept = "kept no train episodes at step 5 (the run keeps every 2nd step's)"
    page.wait_for_function(f"document.querySelector('#count').textContent.includes({kept!r})")


def test_control_characters_show_as_escapes_and_a_source_name_may_hold_a_space(page, url, artifacts):
    page.goto(f"{url}#/episode/my%20run/train-4-0")
    page.wait_for_selector(".pane[data-source='my run'][data-id='train-4-0'] .compare-with a")
    assistant = page.locator(".message.assistant").last.inner_text()
    assert "\\x1b[31mThe answer\\u202e is 4." in assistant and "\x1b" not in assistant and "\u202e" not in assistant
    assert "\\x1b[31m" in page.inner_text(".stream") and "\\u202e is 4." in page.inner_text(".stream")
    assert "answer \\x1b[2J4" in page.inner_text(".facts")
    assert '"2+2\\u202e"' in page.inner_text(".call") and "8.3 µs" in page.inner_text(".call")
    assert page.locator(".stream .esc").count() == 2 and page.locator(".message .esc").count() >= 2
    assert "1 turn, 1 tool call" in page.inner_text(".facts")
    compare = page.inner_text(".compare-with")
    assert "same task, train steps" in compare and "same task in toy, train steps" in compare
    steps = page.locator(".compare-with .links[data-source='my run'][data-split=train]")
    assert steps.locator("a").count() == 10 and "show all 11 steps" in steps.inner_text()  # the nearest: 3 before
    steps.locator("button.all").click()
    assert steps.locator("a").count() == 11
    assert "rewards 0" in steps.locator("a[data-step='20']").get_attribute("title")
    snapshot(page, artifacts, "escapes", ["\\x1b[31m", "\\u202e", "my run"])
    page.goto(f"{url}#/?source=my%20run&step=4")
    page.wait_for_function("document.querySelector('#count').textContent.includes('of 4 episodes')")
    assert "task-\\u202e1" in page.inner_text("#table tbody")  # the override shown, not obeyed
    page.goto(f"{url}#/episode/toy/train-1-0")
    page.click(".pane[data-id='train-1-0'] .compare-with a[data-source='my run'][data-step='4']")
    page.wait_for_selector("#panes.two .pane[data-source='my run'] .stream .tok")
    assert "same task in my run" not in page.inner_text("#panes")  # a comparison lists nothing more


def test_the_shading_chosen_outlives_an_episode_without_it(page, url):
    page.goto(f"{url}#/episode/toy/train-1-0")
    page.wait_for_selector(".pane[data-id='train-1-0'] .stream .tok")
    page.select_option("#shade", "entropy")
    page.goto(f"{url}#/episode/toy/eval-0-0")  # no learner numbers: shaded by the behaviour logprob meanwhile
    page.wait_for_selector(".pane[data-id='eval-0-0'] .stream .tok")
    assert page.input_value("#shade") == "behavior_logprob"
    page.goto(f"{url}#/episode/toy/train-1-1")
    page.wait_for_selector(".pane[data-id='train-1-1'] .stream .tok")
    assert page.input_value("#shade") == "entropy"


def test_the_pager_and_the_address_edge_cases(page, url, artifacts):
    page.goto(f"{url}#/?source=ev&limit=3&offset=99999")  # past the end: the last page
    page.wait_for_function("document.querySelector('#count').textContent.includes('7–8 of 8 episodes')")
    assert "offset=6" in page.evaluate("location.hash")
    assert page.is_enabled("#prev") and not page.is_enabled("#next")
    assert page.input_value("#limit") == "3"  # a size the drop-down does not offer, added to it
    assert page.locator("#table tbody tr").count() == 2
    page.goto(f"{url}#/?source=ev&step=abc")  # refused: no rows, no count, the bad text kept and marked
    page.wait_for_selector("#error:not([hidden])")
    assert 'given: "abc"' in page.inner_text("#error")
    assert page.locator("#table tbody tr").count() == 0 and "refused" in page.inner_text("#count")
    assert page.input_value("input[name=step]") == "abc"
    assert "invalid" in page.get_attribute("input[name=step]", "class")
    snapshot(page, artifacts, "refused", ["step", "abc", "refused"])
    page.goto(f"{url}#/?step_min=5&step_max=3")
    page.wait_for_function("document.querySelector('#error').textContent.includes('step_min')")
    assert "invalid" in page.get_attribute("input[name=step_max]", "class")
    page.fill("input[name=step_min]", "1")
    page.press("input[name=step_min]", "Enter")
    page.wait_for_function("document.querySelector('#error').hidden && document.querySelector('#table tbody tr')")


def test_the_keyboard_sorts_and_opens_and_a_narrow_window_fits(page, url, artifacts):
    page.goto(f"{url}#/?source=toy")
    page.wait_for_selector("#table tbody tr")
    page.focus("#table th[data-sort=reward] button")
    page.keyboard.press("Enter")
    page.wait_for_function("location.hash.includes('sort=reward') && location.hash.includes('order=desc')")
    page.wait_for_function("document.querySelector('#table tbody td:nth-child(7)').textContent === '1'")
    assert page.get_attribute("#table th[data-sort=reward]", "aria-sort") == "descending"
    page.keyboard.press("Enter")  # again: the other way
    page.wait_for_function("location.hash.includes('order=asc')")
    page.wait_for_function("document.querySelector('#table tbody td:nth-child(7)').textContent === '0'")
    first = page.locator("#table tbody tr").first
    first.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"location.hash === '#/episode/toy/{first.get_attribute('data-id')}'")
    page.set_viewport_size({"width": 390, "height": 800})
    try:
        page.goto(f"{url}#/")
        page.reload()  # a page opened on a phone
        page.wait_for_selector("#table tbody tr")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the page does not scroll sideways
        box = page.locator(".table-box")
        assert box.evaluate("b => b.scrollWidth > b.clientWidth")  # the table does, in its box
        assert page.evaluate("getComputedStyle(document.querySelector('header')).position") == "static"
        assert page.locator("#episodes").bounding_box()["y"] < 800  # the table starts on the first screen
        snapshot(page, artifacts, "narrow-table", ["Episodes", "reload data"])
        page.goto(f"{url}#/episode/toy/train-1-0")
        page.wait_for_selector(".pane[data-id='train-1-0'] .stream .tok")
        page.locator(".stream .tok[data-i='7']").hover()
        stuck = "['header', '.detail-bar', '.tokinfo'].map(s => getComputedStyle(document.querySelector(s)).position)"
        assert page.evaluate(stuck) == ["static", "static", "sticky"]  # only a compact info line stays over the stream
        assert page.evaluate("document.querySelector('.tokinfo').offsetHeight") < 80
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        snapshot(page, artifacts, "narrow-episode", ["Tokens", "train-1-0"])
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})
