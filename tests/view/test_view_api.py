"""``agentrl view``'s JSON API through fastapi's TestClient, on a made-up run (``view_stores``):
paging, every filter and sort against the same question asked of the store's rows in Python,
clear errors (an unknown episode or source is a 404 naming it, a bad filter value a 422), a step
written while the viewer runs showing on the next request, and the command's one-line errors."""

from __future__ import annotations

import math
import re
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from view_stores import CLIPPED_AT, FILTERED_AT, write_run, write_step

from agentrl.cli.main import main
from agentrl.curves import panels, read_metrics
from agentrl.episodes import EpisodeStore
from agentrl.view import make_app
from agentrl.view.app import STATIC


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "a")


@pytest.fixture
def client(run: Path) -> TestClient:
    return TestClient(make_app([run]))


def get(client: TestClient, **params: object) -> dict:
    response = client.get("/api/episodes", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def ids(page: dict) -> list[str]:
    return [r["id"] for r in page["rows"]]


def test_pages_cover_every_episode_once_in_order(client, run):
    rows = EpisodeStore(run).rows()
    first = get(client, limit=7)
    assert first["total"] == len(rows) == 38 and len(first["rows"]) == 7
    seen = []
    for offset in range(0, len(rows), 7):
        page = get(client, limit=7, offset=offset, sort="step", order="asc")
        seen += ids(page)
    assert seen == [r["id"] for r in sorted(rows, key=lambda r: r["step"])]  # stable: written order within a step
    assert get(client, offset=len(rows))["rows"] == []
    assert first["rows"][0]["source"] == "a" and "reward" in first["rows"][0]


FILTERS = [  # a filter, and the rows it keeps
    ({"split": "eval"}, lambda r: r["split"] == "eval"),
    ({"step": 2}, lambda r: r["step"] == 2),
    ({"step_min": 1, "step_max": 2}, lambda r: 1 <= r["step"] <= 2),
    ({"reward_min": 0.5}, lambda r: r["reward"] >= 0.5),
    ({"reward_min": 0.2, "reward_max": 0.7}, lambda r: 0.2 <= r["reward"] <= 0.7),
    ({"correct": "true"}, lambda r: r["correct"] is True),
    ({"correct": "false"}, lambda r: r["correct"] is False),
    ({"turns_min": 2, "turns_max": 2}, lambda r: r["turns"] == 2),
    ({"tool_errors": "any"}, lambda r: r["tool_errors"] > 0),
    ({"tool_errors": "none"}, lambda r: r["tool_errors"] == 0),
    ({"truncated": "true"}, lambda r: r["truncated"]),
    ({"staleness_min": 1}, lambda r: r["staleness"] >= 1),
    ({"env": "toy2"}, lambda r: r["env"] == "toy2"),
    ({"task_id": "task-3"}, lambda r: r["task_id"] == "task-3"),
    ({"stop_reason": "truncated"}, lambda r: r["stop_reason"] == "truncated"),
    (
        {"split": "train", "correct": "true", "env": "toy"},
        lambda r: r["split"] == "train" and r["correct"] and r["env"] == "toy",
    ),
    ({"env": "no-such-env"}, lambda r: False),
]


@pytest.mark.parametrize(("params", "keep"), FILTERS, ids=lambda x: str(x) if isinstance(x, dict) else "")
def test_filters_keep_what_the_rows_say(client, run, params, keep):
    expected = [r["id"] for r in EpisodeStore(run).rows() if keep(r)]
    page = get(client, **params, sort="step", order="asc", limit=1000)
    assert ids(page) == sorted(expected, key=lambda i: int(i.split("-")[1]))
    assert page["total"] == len(expected)


def test_the_kind_filter_finds_the_kinds_the_records_hold(client, run):
    store = EpisodeStore(run)
    records = [store.episode(r["id"]) for r in store.rows()]
    timeouts = [r["id"] for r in records if "timeout" in r["tool_errors_by_kind"]]
    assert timeouts and len(timeouts) < sum(r["tool_errors"] > 0 for r in records)
    assert sorted(ids(get(client, kind="timeout", limit=1000))) == sorted(timeouts)
    assert client.get("/api/kinds").json() == {"bad_args": 3, "timeout": 8}
    assert get(client, kind="nothing-like-it")["total"] == 0


def test_sort_by_number_flag_and_text_with_missing_values_last(client, run):
    rows = EpisodeStore(run).rows()
    by_reward = get(client, sort="reward", order="desc", limit=1000)["rows"]
    assert [r["reward"] for r in by_reward] == sorted((r["reward"] for r in rows), reverse=True)
    unknown = sum(r["correct"] is None for r in rows)
    assert unknown == 3  # episode 4 of each train step has no verdict
    for order in ("asc", "desc"):
        correct = [r["correct"] for r in get(client, sort="correct", order=order, limit=1000)["rows"]]
        assert correct[-unknown:] == [None] * unknown  # last either way
        assert correct[:-unknown] == sorted(correct[:-unknown], reverse=order == "desc")
    tasks = [r["task_id"] for r in get(client, sort="task_id", order="asc", limit=1000)["rows"]]
    assert tasks == sorted(tasks)


def test_an_episode_is_its_whole_record(client, run):
    stored = EpisodeStore(run).episode("train-2-1")
    got = client.get("/api/episode", params={"source": "a", "id": "train-2-1"}).json()
    assert got.pop("source") == "a"
    assert got == stored
    assert got["learner"]["in_loss"][FILTERED_AT] == 0 and got["tokens"]["mask"][FILTERED_AT] == 1
    clipped = client.get("/api/episode", params={"source": "a", "id": "train-2-2"}).json()
    assert clipped["learner"]["clipped"][CLIPPED_AT] == 1


def test_a_damaged_step_file_is_an_error_that_names_it(client, run):
    (run / "episodes" / "step-000002.train.jsonl.gz").write_bytes(b"not gzip")
    response = client.get("/api/episode", params={"source": "a", "id": "train-2-0"})
    assert response.status_code == 500 and "step-000002.train.jsonl.gz is damaged" in response.json()["detail"]
    assert get(client, kind="timeout")["total"] == 8  # the table is the index's: it still filters that step
    assert client.get("/api/episode", params={"source": "a", "id": "train-1-0"}).status_code == 200


def test_numbers_json_cannot_hold_go_out_as_strings(client):
    entropy = client.get("/api/episode", params={"source": "a", "id": "train-1-3"}).json()["learner"]["entropy"]
    assert entropy[6] == "nan" and entropy[7] == pytest.approx(0.3)


def test_an_unknown_episode_or_source_is_a_404_that_names_it(client):
    missing = client.get("/api/episode", params={"source": "a", "id": "train-99-0"})
    assert missing.status_code == 404 and "no episode 'train-99-0' in a" in missing.json()["detail"]
    nowhere = client.get("/api/episode", params={"source": "b", "id": "train-1-0"})
    assert nowhere.status_code == 404 and "no source named 'b'; the sources are a" in nowhere.json()["detail"]
    assert client.get("/api/curves", params={"source": "b"}).status_code == 404


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"reward_min": "high"}, 422, "reward_min"),
        ({"step": "1.5"}, 422, "step"),
        ({"split": "trian"}, 422, "split"),
        ({"correct": "maybe"}, 422, "correct"),
        ({"sort": "rewards"}, 422, "sort"),
        ({"order": "up"}, 422, "order"),
        ({"limit": 0}, 422, "limit"),
        ({"limit": 5000}, 422, "limit"),
        ({"offset": -1}, 422, "offset"),
        ({"rewrd_min": 1}, 422, "rewrd_min"),  # a misspelt filter is not silently ignored
        ({"step_min": 3, "step_max": 1}, 422, "step_min (3) is above step_max (1)"),
        ({"source": "b"}, 404, "no source named 'b'; the sources are a"),  # a 404, as on every route
        ({"reward_min": "nan"}, 422, "reward_min must be a finite number"),
        ({"step": 2, "step_min": 3}, 422, "give one or the other"),
    ],
)
def test_a_bad_filter_value_is_a_clear_error(client, params, status, says):
    response = client.get("/api/episodes", params=params)
    assert response.status_code == status
    assert says in str(response.json()["detail"])


def test_a_step_written_while_it_runs_shows_on_the_next_request(client, run):
    before = get(client)["total"]
    write_step(run, 4, "train", 5)
    after = get(client, step=4, sort="reward")
    assert after["total"] == 5 and get(client)["total"] == before + 5
    assert client.get("/api/sources").json()[0]["steps"]["train"] == [1, 2, 3, 4]
    assert client.get("/api/episode", params={"source": "a", "id": "train-4-0"}).status_code == 200


def test_curves_are_agentrl_plots_panels(client, run):
    curves = client.get("/api/curves", params={"source": "a"}).json()
    expected = panels(read_metrics(run))
    assert [p["name"] for p in curves["panels"]] == list(expected) == ["reward", "accuracy", "entropy"]
    assert curves["panels"][0]["series"] == {k: [list(p) for p in v] for k, v in expected["reward"].items()}
    assert curves["panels"][0]["unit"] == "mean reward per episode"


def test_sources_are_named_by_their_folders_and_an_eval_shows_its_numbers(tmp_path):
    one, two = write_run(tmp_path / "x" / "a", steps=1), write_run(tmp_path / "y" / "a", steps=1)
    ev = tmp_path / "ev"
    write_step(ev, 0, "eval", 3)
    (ev / "metrics.json").write_text('{"accuracy": 0.5, "made_by": {"env": "toy"}}')
    client = TestClient(make_app([one, two, ev / "episodes"]))
    sources = client.get("/api/sources").json()
    assert [(s["name"], s["kind"]) for s in sources] == [("x/a", "run"), ("y/a", "run"), ("ev", "eval")]
    assert client.get("/api/curves", params={"source": "ev"}).json()["numbers"] == {"accuracy": 0.5}
    assert get(client, source="y/a", split="eval", limit=1000)["total"] == 8
    assert client.get("/api/episode", params={"source": "y/a", "id": "eval-0-1"}).status_code == 200


def test_the_page_and_its_assets_ship_in_the_package_and_fetch_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script type="module" src="/static/app.js">' in page.text
    assets = sorted(p.name for p in STATIC.iterdir())
    assert {"index.html", "app.js", "style.css"} <= set(assets)
    for name in assets:
        text = (STATIC / name).read_text()
        assert client.get(f"/static/{name}").status_code == 200
        outside = [u for u in re.findall(r"https?://[^\s\"')]+", text) if u != "http://www.w3.org/2000/svg"]
        assert outside == [], f"{name} reaches outside the package: {outside}"
        for imported in re.findall(r'from "\./([\w.]+)"', text):
            assert (STATIC / imported).is_file(), f"{name} imports {imported}, which is not shipped"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["view", "{tmp}/nowhere"], "nowhere: no such folder; give a run folder"),
        (["view", "{tmp}/a/metrics.jsonl"], "metrics.jsonl is a file; give a run folder"),
        (["view", "{tmp}"], "has no episode store; give a run folder"),
        (["view", "{tmp}/empty"], "empty has an empty episode store (no step files in"),
        (["view", "{tmp}/a", "{tmp}/fresh"], "fresh has no episode store yet (episodes/): a run writes"),
        (["view", "{tmp}/a", "--port", "70000"], "--port 70000: a port is 0 to 65535"),
    ],
)
def test_the_command_fails_in_one_line(run, tmp_path, capsys, args, says):
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "config.yaml").write_text("env: math_tool\n")  # a run that has not ended a step yet
    (tmp_path / "empty" / "episodes").mkdir(parents=True)
    code = main([a.replace("{tmp}", str(tmp_path)) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_port_in_use_is_one_line(run, capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["view", str(run), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_rows_carry_no_non_finite_numbers_to_the_page(client):
    for row in get(client, limit=1000)["rows"]:
        assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in row.values())


def test_related_episodes_are_the_group_and_every_other_step_of_the_task(tmp_path):
    run = write_run(tmp_path / "a")
    write_step(run, 2, "train", 12)  # step 2 again, with task-0 and task-1 sampled twice: two groups each
    stored = EpisodeStore(run)
    for row in stored.rows():  # the second sample of a task at step 2 joins the first's group
        assert row["group_id"]
    client = TestClient(make_app([run, write_run(tmp_path / "b", steps=1)]))
    got = client.get("/api/related", params={"source": "a", "id": "train-2-1"}).json()
    assert got["task_id"] == "task-1" and got["group"] == []  # its group is itself alone (group task-1@2)
    places = [(e["source"], e["split"], e["step"]) for e in got["elsewhere"]]
    assert places[:5] == [("a", "train", 1), ("a", "train", 3), ("a", "eval", 0), ("a", "eval", 3), ("b", "train", 1)]
    assert all(
        len(e["episodes"]) == 1 and set(e["episodes"][0]) == {"id", "reward", "correct"} for e in got["elsewhere"]
    )
    missing = client.get("/api/related", params={"source": "a", "id": "train-9-9"})
    assert missing.status_code == 404 and "no episode 'train-9-9' in a" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("/api/episode", [("source", "a"), ("id", "train-1-0"), ("x", "1")], "unknown parameter x"),
        ("/api/kinds", [("sauce", "a")], "unknown parameter sauce (it takes source)"),
        ("/api/episodes", [("source", "a"), ("source", "b")], "source given twice"),
        ("/api/sources", [("limit", "3")], "it takes no parameters"),
    ],
)
def test_a_parameter_a_route_does_not_take_is_refused_not_ignored(client, path, params, says):
    response = client.get(path, params=params)
    assert response.status_code == 422 and says in response.json()["detail"]


def test_the_task_filter_matches_part_of_an_id_and_kinds_by_source(client):
    assert get(client, task_id="task-1", limit=1000)["total"] == len(get(client, task_id="task-1", limit=1000)["rows"])
    assert {r["task_id"] for r in get(client, task_id="ask-", limit=1000)["rows"]} >= {"task-0", "task-9"}
    assert client.get("/api/kinds", params={"source": "a"}).json() == client.get("/api/kinds").json()
    assert client.get("/api/kinds", params={"source": "b"}).status_code == 404


def test_a_step_file_cut_short_still_gives_the_episodes_before_the_cut(client, run):
    path = run / "episodes" / "step-000002.train.jsonl.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])
    first = client.get("/api/episode", params={"source": "a", "id": "train-2-0"})
    last = client.get("/api/episode", params={"source": "a", "id": "train-2-9"})
    assert first.status_code == 200 and first.json()["id"] == "train-2-0"
    assert last.status_code == 500 and "cut short" in last.json()["detail"]
