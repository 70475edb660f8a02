"""The episode store on disk: what a kill leaves is readable, a rewind keeps exactly the steps up to
a checkpoint, a store being written is read afresh, and the records hold the trajectory token-exact."""

from __future__ import annotations

import gzip
import json

import pytest

from agentrl.engines.loading import load_tokenizer
from agentrl.episodes import EpisodeStore, EpisodeWriter, keep, rewind
from agentrl.episodes.records import per_trajectory, staleness, table_rows
from agentrl.episodes.store import INDEX, DamagedStoreError
from agentrl.trainer.setup import DEFAULT_MODEL
from agentrl.types import Trajectory


@pytest.fixture(scope="module")
def tiny_tokenizer():
    return load_tokenizer(str(DEFAULT_MODEL))


def trajectory(ids, mask=None, versions=None, task_id="t") -> Trajectory:
    mask = mask if mask is not None else [1] * len(ids)
    return Trajectory(
        token_ids=list(ids),
        loss_mask=mask,
        behavior_logprobs=[-0.5 * m for m in mask],
        turn_index=[0 if m else -1 for m in mask],
        policy_version=versions if versions is not None else [0 if m else -1 for m in mask],
        reward=1.0,
        reward_components={"correct": 1.0},
        group_id="g",
        task_id=task_id,
        env_id="e",
        episode_id=f"e{task_id}",
        terminated=True,
        truncated=False,
        num_turns=1,
        messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        temperature=1.0,
    )


def fake(step: int, split: str, n: int, reward: float = 0.0) -> list[dict]:
    return [{"id": f"{split}-{step}-{i}", "step": step, "split": split, "reward": reward + i} for i in range(n)]


def test_written_episodes_read_back_by_id_and_in_order(tmp_path):
    writer = EpisodeWriter(tmp_path / "episodes")
    assert writer.write(1, "train", fake(1, "train", 3)) > 0
    writer.write(1, "eval", fake(1, "eval", 2))
    assert writer.write(2, "train", []) == 0  # nothing to keep: no file, no rows
    store = EpisodeStore(tmp_path)  # the run folder: its store
    assert [r["id"] for r in store.rows()] == ["train-1-0", "train-1-1", "train-1-2", "eval-1-0", "eval-1-1"]
    assert store.episode("train-1-2") == fake(1, "train", 3)[2]
    assert store.episode("nope") is None and store.steps("train") == [1] and store.steps() == [1]
    row = store.rows()[1]
    assert row["file"] == "step-000001.train.jsonl.gz" and row["line"] == 1 and row["reward"] == 1.0


def test_what_a_kill_leaves_is_readable(tmp_path):
    folder = tmp_path / "episodes"
    writer = EpisodeWriter(folder)
    writer.write(1, "train", fake(1, "train", 2))
    writer.write(2, "train", fake(2, "train", 2))
    whole = (folder / INDEX).read_bytes()
    cut = gzip.compress(b'{"id": "train-3-0", "file": "step-000003.train.jsonl.gz"}\n')[:20]
    (folder / INDEX).write_bytes(whole + cut)
    (folder / ".step-000003.train.jsonl.gz.tmp").write_bytes(b"\x1f\x8b half")  # a step file cut short
    store = EpisodeStore(folder)
    assert [r["id"] for r in store.rows()] == ["train-1-0", "train-1-1", "train-2-0", "train-2-1"]
    (folder / "step-000002.train.jsonl.gz").unlink()  # an index row whose file is gone is not shown
    assert [r["id"] for r in EpisodeStore(folder).rows()] == ["train-1-0", "train-1-1"]
    assert rewind(folder, 5) == 2  # the resumed run's rewind drops the dangling rows and the cut file
    assert sorted(p.name for p in folder.iterdir()) == [INDEX, "step-000001.train.jsonl.gz"]
    EpisodeWriter(folder).write(2, "train", fake(2, "train", 1))  # and appends after them
    assert [r["id"] for r in EpisodeStore(folder).rows()] == ["train-1-0", "train-1-1", "train-2-0"]


def test_a_store_being_written_is_read_afresh(tmp_path):
    writer = EpisodeWriter(tmp_path)
    writer.write(1, "train", fake(1, "train", 1))
    store = EpisodeStore(tmp_path)
    assert len(store.rows()) == 1
    writer.write(2, "train", fake(2, "train", 2))
    assert len(store.rows()) == 3 and store.episode("train-2-1") is not None


def test_rewind_keeps_the_steps_up_to_the_checkpoint(tmp_path):
    writer = EpisodeWriter(tmp_path)
    for step in (0, 1, 2, 3):
        writer.write(step, "train", fake(step, "train", 2))
        writer.write(step, "eval", fake(step, "eval", 1))
    assert rewind(tmp_path, 1) == 6
    store = EpisodeStore(tmp_path)
    assert store.steps("train") == [0, 1] and store.steps("eval") == [0, 1] and len(store.rows()) == 6
    assert rewind(tmp_path, None) == 6 and EpisodeStore(tmp_path).rows() == []
    assert rewind(tmp_path / "absent", 3) == 0  # a run that kept nothing


def test_a_record_holds_the_trajectory_token_exact(tmp_path, tiny_tokenizer):
    trajectories = [trajectory([1, 2, 3, 4], mask=[0, 1, 1, 0], versions=[-1, 3, 4, -1]), trajectory([5, 6])]
    trace = [{"logprob": [0.0, -0.5, -0.25, 0.0]}]  # the batch trained one row: the second trajectory left out
    size = keep(tmp_path, trajectories, tiny_tokenizer, step=5, split="train", trace=trace, source_rows=[0])
    store = EpisodeStore(tmp_path)
    assert size > 0 and [r["has_learner"] for r in store.rows()] == [True, False]
    first = store.episode("train-5-0")
    assert first["tokens"]["ids"] == [1, 2, 3, 4] and first["tokens"]["mask"] == [0, 1, 1, 0]
    assert first["tokens"]["pieces"] == tiny_tokenizer.batch_decode([[1], [2], [3], [4]])
    assert first["learner"] == trace[0] and store.episode("train-5-1")["learner"] is None
    assert first["staleness"] == 1  # the update made step 5 from version 4; the oldest token is version 3
    assert json.loads(json.dumps(first)) == first


def test_the_learner_trace_follows_each_row_to_its_trajectory():
    rows = [{"logprob": [1.0]}, {"logprob": [2.0]}]
    assert per_trajectory(4, rows, [3, 1]) == [None, {"logprob": [2.0]}, None, {"logprob": [1.0]}]


def test_staleness_counts_versions_behind_the_update():
    assert staleness(trajectory([1, 2], mask=[1, 1], versions=[7, 7]), step=8) == 0  # on-policy
    assert staleness(trajectory([1, 2], mask=[1, 1], versions=[5, 7]), step=8) == 2
    assert staleness(trajectory([1, 2], mask=[0, 0], versions=[-1, -1]), step=8) == 0


@pytest.mark.parametrize("limit", [0, 3, 10])
def test_table_rows_spread_over_the_episodes(limit):
    trajectories = [trajectory([1], task_id=f"t{i}") for i in range(6)]
    rows = table_rows(trajectories, step=2, limit=limit)
    assert len(rows) == min(limit, 6)
    if limit == 3:
        assert [r["task_id"] for r in rows] == ["t0", "t2", "t4"] and rows[0]["step"] == 2


def test_a_cut_or_lost_index_hides_nothing_the_files_hold(tmp_path):
    """The step files are the truth: a member of the index cut by a kill loses none of its step's
    episodes (not a partial step either), and a lost or garbage index is rebuilt from them."""
    folder = tmp_path / "episodes"
    writer = EpisodeWriter(folder)
    for step in (1, 2):
        writer.write(step, "train", fake(step, "train", 64))
    whole = (folder / INDEX).read_bytes()
    (folder / INDEX).write_bytes(whole[:-300])  # the last member (step 2's 64 rows) cut mid-way
    ids = [r["id"] for r in EpisodeStore(folder).rows()]
    assert ids == [f"train-{s}-{i}" for s in (1, 2) for i in range(64)]
    for damage in (b"garbage", b""):
        (folder / INDEX).write_bytes(damage)
        assert [r["id"] for r in EpisodeStore(folder).rows()] == ids
    (folder / INDEX).unlink()
    store = EpisodeStore(tmp_path)
    assert store.exists and [r["id"] for r in store.rows()] == ids and store.episode("train-2-63")["reward"] == 63
    assert rewind(folder, 1) == 0 and (folder / INDEX).is_file()  # the resumed run's rewind writes it whole again
    assert [r["id"] for r in EpisodeStore(folder).rows()] == ids[:64]


def test_a_damaged_step_file_is_one_clear_error_and_the_rest_reads(tmp_path):
    writer = EpisodeWriter(tmp_path)
    writer.write(1, "train", fake(1, "train", 2))
    writer.write(2, "train", fake(2, "train", 200))
    path = tmp_path / "step-000002.train.jsonl.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # half a file
    store = EpisodeStore(tmp_path)
    assert len(store.rows()) == 202 and store.episode("train-1-1")["reward"] == 1
    assert store.episode("train-2-5")["reward"] == 5  # before the cut: whole lines still read
    with pytest.raises(DamagedStoreError, match=r"step-000002.train.jsonl.gz is damaged \(EOFError.*cut short"):
        store.episode("train-2-199")
