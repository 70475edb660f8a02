"""search_qa: the fictional world, QA grading, and the environment against a real BM25 index."""

from __future__ import annotations

import asyncio
import json

import pytest

from agentrl.envs import check_env, make
from agentrl.errors import AgentRLError, ConfigError
from agentrl_envs import search_world
from agentrl_envs.qa_grading import exact_match, extract_answer, f1, gold_list, golds_of, normalize
from agentrl_envs.search_qa import SearchQAEnv
from agentrl_tools.search.base import Passage, SearchResult
from agentrl_tools.search.tool import TRUNCATED

WORLD = search_world.world(0)


# ---- the world --------------------------------------------------------------------------
def test_world_is_seeded_and_names_are_unique():
    again = search_world.World(0)
    assert list(again.documents()) == list(WORLD.documents())
    assert list(search_world.World(1).documents()) != list(WORLD.documents())
    docs = list(WORLD.documents())
    assert len({d["id"] for d in docs}) == len(docs) > 2000
    titles = [d["contents"].split("\n")[0] for d in docs]
    assert len(set(titles)) == len(titles)


def test_every_answer_is_in_the_document_of_the_last_hop():
    contents = {d["contents"].split("\n")[0]: d["contents"] for d in WORLD.documents()}
    questions = list(WORLD.questions())
    assert {len(q.hops) for q in questions} == {1, 2}
    for q in questions:
        assert q.answer in contents[q.hops[-1]], q
        if len(q.hops) == 2:  # the first document names the second hop
            assert q.hops[1] in contents[q.hops[0]], q


def test_splits_are_by_subject_and_hold_the_two_hop_share():
    train, test = WORLD.tasks("train", 400, 0.25), WORLD.tasks("test", 200, 0.25)
    assert len(train) == 400 and len(test) == 200
    by_id = {q.id: q for q in WORLD.questions()}
    train_subjects = {by_id[t.id].subject for t in train}
    assert not train_subjects & {by_id[t.id].subject for t in test}
    assert sum(len(t.meta["hops"]) == 2 for t in test) == 50
    assert golds_of(test[0].answer) == [by_id[test[0].id].answer]


# ---- grading ----------------------------------------------------------------------------
def test_squad_normalisation_exact_match_and_f1():
    assert normalize("  The Dunmarch-Guild!  ") == "dunmarchguild"
    assert normalize("An apple, a pear") == "apple pear"
    assert exact_match("the Ostrel", ["Paris", "ostrel"]) == 1.0
    assert exact_match("Ostrel city", ["Ostrel"]) == 0.0
    # predicted {kel, vara, guild} vs gold {kel, vara, society}: 2 common, p = r = 2/3
    assert f1("Kel Vara Guild", ["Kel Vara Society", "nothing"]) == pytest.approx(2 / 3)
    assert f1("", ["x"]) == 0.0


def test_answer_tag_and_gold_lists():
    assert extract_answer("<answer>a</answer> then <answer> b </answer>") == "b"
    assert extract_answer("no tag") is None
    assert golds_of('["x", "y"]') == ["x", "y"] and golds_of("plain") == ["plain"] and golds_of("[1]") == ["[1]"]
    assert gold_list(["a", " ", None, "b"]) == '["a", "b"]' and gold_list("c") == '["c"]'
    assert gold_list([]) is None


# ---- the environment ----------------------------------------------------------------------
@pytest.fixture
def env(tmp_path):
    e = make("search_qa", cache_dir=str(tmp_path / "cache"), num_tasks=50)
    yield e
    e.close()


def _task(env, hops=1):
    return next(t for t in env.tasks("test") if len(t.meta["hops"]) == hops)


def test_search_then_answer(env):
    task = _task(env)
    messages, info = env.reset(seed=0, options={"task": task})
    assert messages[-1] == {"role": "user", "content": task.prompt} and info["task_id"] == task.id
    subject = task.meta["hops"][0]
    obs, reward, terminated, truncated, info = env.step(f"<search>{subject}</search>")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert obs[0]["role"] == "tool" and obs[0]["content"].startswith(f"<information>Doc 1 (Title: {subject}) ")
    assert obs[0]["content"].endswith("</information>")
    gold = golds_of(task.answer)[0]
    assert gold in obs[0]["content"]
    assert info["tool_status"] == "ok" and info["tool_calls"] == [{"name": "search", "arguments": {"query": subject}}]
    obs, reward, terminated, truncated, info = env.step(f"<answer>{gold.upper()}</answer>")
    assert (obs, reward, terminated, truncated) == ([], 1.0, True, False)
    assert info["reward_components"] == {"correct": 1.0, "f1": 1.0, "searches": 1.0}


def test_two_hops_need_two_searches(env):
    task = _task(env, hops=2)
    env.reset(seed=0, options={"task": task})
    first, _, _, _, _ = env.step(f"<search>{task.meta['hops'][0]}</search>")
    assert task.meta["hops"][1] in first[0]["content"]
    second, _, _, _, _ = env.step(f"<search>{task.meta['hops'][1]}</search>")
    assert golds_of(task.answer)[0] in second[0]["content"]


def test_wrong_answer_format_reward_and_search_cost(tmp_path):
    e = make("search_qa", cache_dir=str(tmp_path), num_tasks=20, format_reward=0.1, search_cost=0.05)
    e.reset(seed=0, options={"task": _task(e)})
    e.step("<search>anything</search>")
    _, reward, terminated, _, info = e.step("<answer>nobody at all</answer>")
    assert terminated and reward == pytest.approx(0.1 - 0.05)
    assert info["reward_components"]["correct"] == 0.0 and info["reward_components"]["searches"] == 1.0


def test_budgets_and_bad_actions(tmp_path):
    e = make("search_qa", cache_dir=str(tmp_path), num_tasks=20, max_turns=5, max_searches=1)
    e.reset(seed=0, options={"task": _task(e)})
    assert e.step("   ")[4]["parse_error"] == "empty_output"
    assert e.step("I think so.")[4]["parse_error"] == "no_action"
    assert e.step("<search></search>")[4]["parse_error"] == "bad_args"
    assert e.step("<search>x")[4]["parse_error"] == "malformed_call"
    obs, reward, terminated, truncated, info = e.step("<search>a</search><search>b</search>")
    assert info["parse_error"] == "too_many_calls" and "search budget (1)" in obs[0]["content"]
    assert truncated and not terminated and reward == 0.0
    assert info["reward_components"] == {"correct": 0.0, "f1": 0.0, "searches": 0.0}


def test_hermes_calls(tmp_path):
    e = make("search_qa", cache_dir=str(tmp_path), num_tasks=20, tool_format="hermes")
    task = _task(e)
    e.reset(seed=0, options={"task": task})
    call = json.dumps({"name": "search", "arguments": {"query": task.meta["hops"][0]}})
    obs, *_, info = e.step(f"<tool_call>{call}</tool_call>")
    assert info["tool_status"] == "ok" and obs[0]["content"].startswith("<information>Doc 1")
    assert e.step('<tool_call>{"name": "search", "arguments": {"q": 1}}</tool_call>')[4]["parse_error"] == "bad_args"


def test_observation_is_capped_with_a_visible_marker(tmp_path):
    e = make("search_qa", cache_dir=str(tmp_path), num_tasks=20, max_passage_chars=30, max_observation_chars=100)
    e.reset(seed=0, options={"task": _task(e)})
    obs, *_ = e.step("<search>born painter guild</search>")
    text = obs[0]["content"]
    assert len(text) <= 100 and TRUNCATED in text and text.endswith("</information>")


class _Failing:
    def __init__(self, status):
        self.status = status

    async def search(self, query, topk):
        return SearchResult(status=self.status, message="the server went away")


@pytest.mark.parametrize("status", ["timeout", "unavailable", "error"])
def test_a_failed_search_is_an_observation(env, status):
    env.search.retriever = _Failing(status)
    env.reset(seed=0, options={"task": _task(env)})
    obs, reward, terminated, truncated, info = env.step("<search>anything</search>")
    assert info["tool_status"] == status and obs[0]["content"] == f"Error: search {status}: the server went away"
    assert (reward, terminated, truncated) == (0.0, False, False)


def test_async_step_matches_step(env):
    task = _task(env)
    env.reset(seed=0, options={"task": task})
    sync = env.step(f"<search>{task.meta['hops'][0]}</search>")
    env.reset(seed=0, options={"task": task})
    assert asyncio.run(env.astep(f"<search>{task.meta['hops'][0]}</search>"))[:4] == sync[:4]


def test_check_env_passes(tmp_path):
    check_env(lambda: SearchQAEnv(cache_dir=str(tmp_path), num_tasks=20))


# ---- a user's data ------------------------------------------------------------------------
def _user_data(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {"id": "1", "title": "Zorvath", "text": "Zorvath is a moon of the planet Kessik."},
        {"id": "2", "contents": '"Kessik"\nKessik is a planet orbiting the star Ulmira.'},
        {"id": "3", "title": "Ulmira", "text": "Ulmira is a yellow star."},
    ]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    questions = [
        {"id": "q1", "question": "Which planet is Zorvath a moon of?", "golden_answers": ["Kessik", "planet Kessik"]},
        {"id": "q2", "question": "What does Kessik orbit?", "golden_answers": ["Ulmira"]},
    ]
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    return corpus, questions


def test_a_users_corpus_and_questions_in_jsonl_and_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    corpus, questions = _user_data(tmp_path)
    pq.write_table(pa.Table.from_pylist(questions), tmp_path / "test.parquet")
    for source in (str(tmp_path / "{split}.jsonl"), str(tmp_path / "test.parquet")):
        e = make("search_qa", source=source, corpus=str(corpus), cache_dir=str(tmp_path / "cache"))
        task = e.tasks("test")[0]
        assert golds_of(task.answer) == ["Kessik", "planet Kessik"]
        e.reset(seed=0, options={"task": task})
        obs, *_ = e.step("<search>Zorvath moon of Kessik</search>")
        assert obs[0]["content"].startswith("<information>Doc 1 (Title: Zorvath) Zorvath is a moon")
        assert "(Title: Kessik)" in obs[0]["content"]  # the quoted Search-R1 title is unquoted
        assert e.step("<answer>the planet Kessik</answer>")[1] == 1.0


def test_a_local_hf_dataset_directory(tmp_path):
    pytest.importorskip("datasets")
    corpus, _ = _user_data(tmp_path)
    e = make("search_qa", source=f"hf:{tmp_path}", corpus=str(corpus), cache_dir=str(tmp_path / "cache"))
    assert e.tasks("test")[0].prompt == "Which planet is Zorvath a moon of?"


def test_a_file_source_without_a_corpus_is_one_line():
    with pytest.raises(ConfigError, match=r"^search_qa: source='q.jsonl' needs corpus=FILE"):
        make("search_qa", source="q.jsonl")


def test_an_unreachable_server_is_one_line_before_any_episode():
    with pytest.raises(AgentRLError) as err:
        make("search_qa", retriever="http://127.0.0.1:9", timeout_s=0.2, retries=0)
    assert "\n" not in str(err.value) and "agentrl serve retriever" in str(err.value)


def test_passage_title_and_text():
    p = Passage(id="1", contents='"A Title"\nbody\nmore')
    assert (p.title, p.text) == ("A Title", "body\nmore")
