"""A tool's service that fails in any way stops training and fails an evaluation, in one line
that names the service, its URL and the failures by kind; nothing is trained or reported on it.

The retriever is the real ``agentrl serve retriever`` stopped with SIGSTOP (it hangs: connections
are accepted by the kernel and never answered), or a stand-in HTTP server that answers the
start-up check and then fails every search one way: unreadable JSON, a 4xx, a 5xx."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agentrl.cli.main import main
from agentrl_envs.search_world import write_corpus
from helpers import ServerProcess

CHECK_ANSWER = json.dumps({"result": [[{"id": "0", "contents": "t\nx"}]]}).encode()
FAULTS = {"garbage": (200, b"<html>not json</html>"), "http_422": (422, b'{"detail": "no"}'), "http_503": (503, b"")}


class _FaultyRetriever(BaseHTTPRequestHandler):
    fault = "garbage"

    def do_GET(self):  # /health
        self._answer(200, b'{"status": "ok"}')

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("queries") == ["test"]:  # the client's start-up check passes
            return self._answer(200, CHECK_ANSWER)
        self._answer(*FAULTS[self.fault])

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def faulty():
    servers = []

    def start(fault: str) -> str:
        handler = type("Handler", (_FaultyRetriever,), {"fault": fault})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture
def server(tmp_path):
    """The real retriever."""
    server = ServerProcess(write_corpus(tmp_path / "world.jsonl")).start()
    yield server
    os.kill(server.proc.pid, signal.SIGCONT)
    server.kill()


def hang_after_first_search(server: ServerProcess) -> threading.Thread:
    """Stops ``server`` (SIGSTOP) once it has answered its first search: the run's start-up
    check passes, and every search after hangs."""

    def watch() -> None:
        while server.stats()["requests"] < 1:
            time.sleep(0.02)
        os.kill(server.proc.pid, signal.SIGSTOP)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def train(tmp_path: Path, url: str, *extra: str) -> list[str]:
    args = ["train", "--env", "helpers:SearchEveryTurn", "--algo", "grpo", "--steps", "2", "--no-progress"]
    args += ["--env-arg", f"retriever={url}", "--env-arg", "timeout_s=0.5", "--env-arg", "retries=0"]
    args += ["--set", "tasks_per_step=4", "--set", "group_size=2", "--set", "eval_tasks=4", *extra]
    args += ["--runs-dir", str(tmp_path / "runs"), "--name", "r"]
    return args


def trained_steps(tmp_path: Path) -> list[int]:
    path = tmp_path / "runs" / "r" / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [row["step"] for row in rows if row["step"] > 0]


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("agentrl: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_a_retriever_that_hangs_mid_run_stops_training_before_any_step_trains(tmp_path, server, capsys):
    hang_after_first_search(server)
    assert main(train(tmp_path, server.url, "--set", "eval_every=0")) == 2
    line = one_line(capsys.readouterr().err)
    assert f"search at {server.url}: " in line and " timeout" in line, line
    assert "max_service_failure_rate=0.5" in line and f"agentrl train --resume {tmp_path / 'runs' / 'r'}" in line
    assert trained_steps(tmp_path) == []


@pytest.mark.parametrize(("fault", "kind"), [("garbage", "error"), ("http_422", "error"), ("http_503", "unavailable")])
def test_every_way_a_retriever_fails_stops_training(tmp_path, faulty, capsys, fault, kind):
    url = faulty(fault)
    assert main(train(tmp_path, url, "--set", "eval_every=0")) == 2
    line = one_line(capsys.readouterr().err)
    assert f"search at {url}: " in line and f" {kind}" in line, line
    assert trained_steps(tmp_path) == []


def test_a_retriever_that_hangs_from_the_start_is_one_line_before_training(tmp_path, server, capsys):
    os.kill(server.proc.pid, signal.SIGSTOP)
    assert main(train(tmp_path, server.url)) == 2
    line = one_line(capsys.readouterr().err)
    assert f"retriever at {server.url} is connected but did not answer" in line and "hung" in line, line
    assert trained_steps(tmp_path) == []


def test_the_model_s_own_bad_calls_do_not_stop_training(tmp_path, server, capsys):
    """Empty queries are the model's fault: with a healthy server, a run whose every call is
    refused for its input trains."""
    args = train(tmp_path, server.url, "--set", "eval_every=0", "--set", "eval_tasks=1")
    args[args.index("helpers:SearchEveryTurn")] = "helpers:SearchNothingEveryTurn"
    assert main(args) == 0, capsys.readouterr().err
    assert trained_steps(tmp_path) == [1, 2]


def evaluate(tmp_path: Path, url: str, *extra: str) -> list[str]:
    args = ["eval", "--env", "helpers:SearchEveryTurn", "-n", "4", "--no-progress", "--max-new-tokens", "8"]
    args += ["--env-arg", f"retriever={url}", "--env-arg", "timeout_s=0.5", "--env-arg", "retries=0"]
    return [*args, "--output", str(tmp_path / "eval"), *extra]


def test_an_evaluation_on_a_failing_retriever_fails_in_one_line_and_reports_nothing(tmp_path, faulty, capsys):
    url = faulty("garbage")
    assert main(evaluate(tmp_path, url)) == 2
    line = one_line(capsys.readouterr().err)
    assert f"search at {url}: 4 error" in line and "were not written" in line, line
    assert not (tmp_path / "eval" / "metrics.json").exists()
    assert len((tmp_path / "eval" / "trajectories.jsonl").read_text().splitlines()) == 4  # kept to look at


def test_allow_service_failures_reports_them_flagged(tmp_path, faulty, capsys):
    url = faulty("http_503")
    assert main(evaluate(tmp_path, url, "--allow-service-failures")) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["tool_service_failure_rate"] == 1.0
    assert metrics["service_failures"] == {f"search at {url}": {"unavailable": 4}}
    assert f"search at {url}: 4 unavailable" in metrics["service_failure_problem"]
    assert "warning" in capsys.readouterr().err
    made_by = metrics["made_by"]
    assert made_by["env"] == "helpers:SearchEveryTurn" and made_by["split"] == "test"
    assert made_by["env_args"]["retriever"] == url and made_by["sampling"]["max_new_tokens"] == 8
    assert made_by["seed"] == 0 and made_by["agentrl_version"] and made_by["model"] and made_by["started_at"]
    assert made_by["engine"] == "transformers" and made_by["engine_chosen_because"].startswith("auto")
