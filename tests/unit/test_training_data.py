"""The `prepare` phase's data work on hand-made trajectory records: answers, dedupe, balance, split."""

from __future__ import annotations

import json

from services.trainer.dataset import completion_for, prepare
from sparkpilot.trajectory import StepOutcome, TrajectoryStep


def record(run: str, target: dict, raw: str | None = None, elements: list[tuple[str, str]] = (("57", "Submit"),),
           goal: str = "Click Submit.", error: str | None = None, seed: int = 0, task: str = "click-button",
           content: object = None) -> TrajectoryStep:
    lines = "\n".join(f'[{bid}] button "{name}"' for bid, name in elements)
    user = content if content is not None else f"GOAL: {goal}\nELEMENTS:\n{lines}\nANSWER:"
    return TrajectoryStep(run_id=run, task=f"miniwob {task}", policy="model", env={"type": "miniwob", "task": task,
                          "seed": seed}, reward=1.0, step=0, messages=[{"role": "system", "content": "S"},
                          {"role": "user", "content": user}], target=target, raw_output=raw, observation={},
                          timings_ms={}, outcome=StepOutcome(error=error, run_status="succeeded", run_reason="reward",
                                                             run_result=None, reward=1.0))


CLICK = {"name": "click", "args": {"bid": "57"}}


def test_the_models_own_answer_is_kept_when_it_says_the_same() -> None:
    raw = '{"action":"click","target":"Submit","bid":"57"}'
    assert completion_for(record("r", CLICK, raw)) == (raw, 0)


def test_a_scripted_step_gets_the_schema_answer_rebuilt_from_the_element_list() -> None:
    rec = record("r", {"name": "click", "args": {"bid": "12"}}, raw='{"thought":"replay","action":{"name":"click"}}',
                 elements=[("57", "Cancel"), ("12", "Submit")])
    assert completion_for(rec) == ('{"action":"click","target":"Submit","bid":"12"}', 1)
    fill = record("r", {"name": "fill", "args": {"bid": "57", "text": "Ada"}}, elements=[("57", "Name")])
    assert json.loads(completion_for(fill)[0]) == {"action": "fill", "target": "Name", "bid": "57", "text": "Ada"}


def test_unusable_steps_are_skipped() -> None:
    assert completion_for(record("r", {})) is None  # no action parsed
    assert completion_for(record("r", CLICK, error="no element")) is None  # the action failed
    assert completion_for(record("r", {"name": "click", "args": {"bid": "999"}})) is None  # not in the prompt
    image = [{"type": "image_url", "image_url": {"url": "step:0"}}, {"type": "text", "text": "x"}]
    assert completion_for(record("r", CLICK, content=image)) is None  # vision prompts: not trained here yet


def test_duplicates_are_dropped_and_counted() -> None:
    out = prepare([record("a", CLICK), record("b", CLICK), record("c", CLICK, goal="Other")], 0.0, 1, 0)
    assert out.stats["duplicates"] == 1 and out.stats["train"] == 2 and out.stats["records"] == 3


def test_balance_repeats_rarer_positions_and_actions_and_drops_nothing() -> None:
    # 9 answers on the first element, 2 on the second, 1 fill: "click the first id" loses its share, no step is lost.
    two = [("57", "A"), ("12", "B")]
    recs = [record(f"f{i}", {"name": "click", "args": {"bid": "57"}}, goal=f"g{i}", elements=two) for i in range(9)]
    recs += [record(f"s{i}", {"name": "click", "args": {"bid": "12"}}, goal=f"h{i}", elements=two) for i in range(2)]
    recs += [record("t", {"name": "fill", "args": {"bid": "12", "text": "x"}}, goal="t", elements=two)]
    out = prepare(recs, 0.0, 3, seed=1)
    assert out.stats["train_unique"] == 12 and {e.run_id for e in out.train} == {r.run_id for r in recs}
    assert out.stats["by_action"]["fill"] >= 3  # the single fill, repeated up to 3 times (then positions rebalance)
    shares = out.stats["by_position"]
    assert shares["0"] == 9 + 0 and shares["1"] > 3 and out.stats["repeated_for_balance"] == len(out.train) - 12
    # A repeat of 1 turns balancing off; no group ever grows past the commonest one.
    plain = prepare(recs, 0.0, 1, seed=1)
    assert plain.stats["repeated_for_balance"] == 0 and plain.stats["by_position"] == {"0": 9, "1": 3}
    big = prepare(recs, 0.0, 20, seed=1)
    assert max(big.stats["by_position"].values()) == big.stats["by_position"]["0"]


def test_split_keeps_each_episode_on_one_side_and_records_seeds() -> None:
    recs = [record(f"run{i}", CLICK, goal=f"g{i}-{j}", seed=i) for i in range(10) for j in range(2)]
    out = prepare(recs, 0.2, 1, seed=3)
    train_runs, val_runs = {e.run_id for e in out.train}, {e.run_id for e in out.val}
    assert len(val_runs) == 2 and not train_runs & val_runs
    assert out.stats["seeds"] == sorted(f"click-button:{i}" for i in range(10))
    row = out.train[0].row()
    assert set(row) == {"messages", "completion", "action", "position", "run_id", "task", "seed"}


def test_the_sdft_teacher_sees_the_demonstration_and_the_student_prompt_is_untouched() -> None:
    from services.trainer.sdft_train import teacher_messages

    student = [{"role": "system", "content": "s"}, {"role": "user", "content": "GOAL: click OK"}]
    teacher = teacher_messages(student, '{"name":"click","args":{"bid":"a1"}}')
    assert student[-1]["content"] == "GOAL: click OK"  # not mutated
    assert teacher[0] == student[0] and teacher[-1]["content"].startswith("GOAL: click OK\n\n")
    assert '{"name":"click","args":{"bid":"a1"}}' in teacher[-1]["content"]
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "step:0"}}]}]
    parts = teacher_messages(image, "click(1, 2)")[-1]["content"]
    assert parts[0] == image[0]["content"][0] and parts[-1]["type"] == "text" and "click(1, 2)" in parts[-1]["text"]
    assert len(image[0]["content"]) == 1


def test_a_persons_steps_are_demonstrations_when_they_fit_the_action_space() -> None:
    human = record("h", {"name": "click", "args": {"bid": "57"}, "actor": "human", "point": [200, 230]})
    human.actor = "human"
    assert completion_for(human) == ('{"action":"click","target":"Submit","bid":"57"}', 0)
    missed = record("h", {"name": "click_xy", "args": {"x": 5, "y": 5}, "actor": "human"})
    missed.actor = "human"
    assert completion_for(missed) is None  # a click on no listed element: not in the text action space
    unprompted = record("h", CLICK)
    unprompted.messages = []
    assert completion_for(unprompted) is None  # the prompt could not be built: nothing to learn from
    out = prepare([human, record("a", CLICK, goal="Other")], 0.0, 1, 0)
    assert out.stats["human_demonstrations"] == 1 and out.stats["records"] == 2
