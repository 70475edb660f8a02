import json

import pytest

from agentrl.envs import make
from agentrl.tasks import TaskSourceError, resolve
from agentrl_envs.arith import ArithmeticTasks, Difficulty
from agentrl_envs.grading import gold_answer
from agentrl_tools.calculator import evaluate


def test_generator_is_seeded_and_correct():
    a = ArithmeticTasks("test", 50, seed=3)
    assert [t.prompt for t in a] == [t.prompt for t in ArithmeticTasks("test", 50, seed=3)]
    assert [t.prompt for t in a] != [t.prompt for t in ArithmeticTasks("test", 50, seed=4)]
    assert [t.prompt for t in a] != [t.prompt for t in ArithmeticTasks("train", 50, seed=3)]
    assert a[7] == a[7] and a[-1] == a[49]
    for task in ArithmeticTasks(
        "test", 200, seed=1, difficulty=Difficulty(max_digits=3, num_ops=2, ops="+-*/", word_problems=0)
    ):
        expression = task.prompt.removeprefix("What is ").removesuffix("?")
        assert evaluate(expression) == int(task.answer)


def test_difficulty_knobs():
    hard = ArithmeticTasks("test", 100, difficulty=Difficulty(max_digits=4, num_ops=3, word_problems=0))
    assert all(t.prompt.count(" ") >= 7 for t in hard)
    words = ArithmeticTasks("test", 100, difficulty=Difficulty(word_problems=1.0))
    assert all(not t.prompt.startswith("What is") for t in words)


def test_gold_answer_forms():
    assert gold_answer("She makes 9 * 2 = $<<9*2=18>>18.\n#### 1,018") == "1018"
    assert gold_answer("so \\boxed{\\frac{3}{4}}") == "\\frac{3}{4}"
    assert gold_answer(" 7 ") == "7"
    assert gold_answer(None) is None and gold_answer("") is None and gold_answer("####") == "####"


def test_jsonl_source_skips_rows_without_answers(tmp_path):
    path = tmp_path / "test.jsonl"
    rows = [{"question": "1+1?", "answer": "#### 2"}, {"question": "no answer"}, {"problem": "2+2?", "solution": "4"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.warns(UserWarning, match="skipped 1 rows"):
        tasks = resolve(str(tmp_path / "{split}.jsonl"), "test", answer=gold_answer)
    assert [(t.prompt, t.answer) for t in tasks] == [("1+1?", "2"), ("2+2?", "4")]


def test_the_answer_format_is_the_callers(tmp_path):
    """The core reads answers as plain text; GSM8K's ``####`` is the math environments' rule."""
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n")
    assert [t.answer for t in resolve(str(path), "test")] == ["#### 2"]
    assert [t.answer for t in resolve(str(path), "test", answer=gold_answer)] == ["2"]
    assert [t.answer for t in resolve(str(path), "test", answer=lambda a: a[-1])] == ["2"]
    assert [t.answer for t in make("math", source=str(path)).tasks("test")] == ["2"]


def test_source_without_usable_rows_is_an_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q"}\n')
    with pytest.raises(TaskSourceError, match="no row has both"), pytest.warns(UserWarning):
        resolve(str(path), "test")
    with pytest.raises(TaskSourceError, match="does not exist"):
        resolve(str(tmp_path / "missing.jsonl"), "test")
    path.write_text("{broken\n")
    with pytest.raises(TaskSourceError, match=":1: not valid JSON"):
        resolve(str(path), "test")


def test_parquet_source(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"question": ["3*3?"], "answer": ["#### 9"]}), tmp_path / "t.parquet")
    assert [t.answer for t in resolve(str(tmp_path / "t.parquet"), "test", answer=gold_answer)] == ["9"]


def test_datasets_source_with_a_local_dataset(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (tmp_path / "test.jsonl").write_text(json.dumps({"question": "5-1?", "answer": "#### 4"}) + "\n")
    tasks = resolve(f"hf:{tmp_path}", "test", answer=gold_answer)
    assert [(t.prompt, t.answer) for t in tasks] == [("5-1?", "4")]
    with pytest.raises(TaskSourceError, match="cannot load dataset"):
        resolve(f"hf:{tmp_path / 'nothing'}", "test")


@pytest.mark.gsm8k
def test_gsm8k_rows_are_understood(gsm8k_dir):
    env = make("math", source=str(gsm8k_dir / "{split}.jsonl"))
    test, train = env.tasks("test"), env.tasks("train")
    assert (len(test), len(train)) == (1319, 7473)
    assert all(t.answer.lstrip("-").replace(".", "").isdigit() for t in test)
    messages, _ = env.reset(seed=0, options={"task": test[0]})
    assert messages[-1]["content"] == test[0].prompt
    _, reward, *_ = env.step(f"The answer is {test[0].answer}.")
    assert reward == 1.0
