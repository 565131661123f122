"""The `prepare` phase's data work: trajectory records → deduplicated chat examples, split train/val, balanced.

An example is the messages exactly as the model saw them and, as the completion, the answer in
the format the step's JSON schema enforces (`{"action":"click","target":"Submit","bid":"57"}`).
The model's own raw answer is used when it says the same as the recorded action; otherwise (a
scripted or repaired step) the answer is rebuilt from the action and the element list.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.action_space import example_answer
from sparkpilot.trajectory import TrajectoryStep

_ELEMENT = re.compile(r'^\[(\w+)\] \S+(?: "([^"]*)")?', re.M)
_VALUE_ARGS = ("text", "value", "key", "dy", "url", "answer")


@dataclass
class Example:
    """One training pair and where it came from."""

    messages: list[dict[str, Any]]
    completion: str
    action: str
    position: int  # the target's place in the element list (-1: no element)
    run_id: str
    task: str
    seed: int | None

    def row(self) -> dict[str, Any]:
        """The JSONL row the trainer reads."""
        return {"messages": self.messages, "completion": self.completion, "action": self.action,
                "position": self.position, "run_id": self.run_id, "task": self.task, "seed": self.seed}


@dataclass
class Prepared:
    """The split data and what happened to the records on the way."""

    train: list[Example]
    val: list[Example]
    stats: dict[str, Any] = field(default_factory=dict)


def _elements(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(bid, name) of each element line in the last user message, in order."""
    text = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    if not isinstance(text, str) or "ELEMENTS:" not in text:
        return []
    section = text.split("ELEMENTS:", 1)[1]
    return [(m.group(1), m.group(2) or "") for m in _ELEMENT.finditer(section)]


def completion_for(record: TrajectoryStep) -> tuple[str, int] | None:
    """(the answer to train on, the target's position), or None for a step that is no training example."""
    name, args = record.target.get("name"), dict(record.target.get("args") or {})
    if not name or record.outcome.error or not record.messages:
        return None
    if record.actor == "human" and name.endswith("_xy"):
        return None  # a person's click or typing that hit no listed element: not in the text action space
    if any(isinstance(m.get("content"), list) for m in record.messages):
        return None  # screenshot prompts (a vision dialect) are not trained here yet
    elements = _elements(record.messages)
    bids = [b for b, _ in elements]
    bid = args.pop("bid", None)
    position = bids.index(str(bid)) if bid is not None and str(bid) in bids else -1
    if bid is not None and position < 0:
        return None  # the element is not in the prompt: nothing to learn from
    try:
        raw = json.loads(record.raw_output or "")
    except ValueError:
        raw = None
    if isinstance(raw, dict) and raw.get("action") == name and str(raw.get("bid", "")) == str(bid or ""):
        return (record.raw_output or "").strip(), position
    answer: dict[str, Any] = {"action": name}
    if bid is not None:
        answer |= {"target": elements[position][1], "bid": str(bid)}
    answer |= {k: args[k] for k in _VALUE_ARGS if k in args}
    return example_answer(answer, "none"), position


def _balance(examples: list[Example], key: str, repeat: int, rng: random.Random) -> list[Example]:
    """Repeat the examples of each rarer value of `key` up to `repeat` times, never past the commonest value's count.

    Nothing is dropped: successful steps are scarce, and a click-heavy task mix is not a bias to remove.
    What is corrected is the share, e.g. the "click the first id" habit against later positions.
    """
    groups: dict[Any, list[Example]] = defaultdict(list)
    for ex in examples:
        groups[getattr(ex, key)].append(ex)
    if len(groups) < 2 or repeat <= 1:
        return list(examples)
    most = max(len(g) for g in groups.values())
    out: list[Example] = []
    for group in groups.values():
        target = min(most, len(group) * repeat)
        order = rng.sample(group, len(group))
        out.extend(order[i % len(order)] for i in range(max(target, len(group))))
    return out


def prepare(records: Iterable[TrajectoryStep], val_fraction: float, repeat: int, seed: int) -> Prepared:
    """Dedupe, split by episode (its steps stay together), balance the train split by action and by element position."""
    rng = random.Random(seed)
    seen: set[str] = set()
    examples: list[Example] = []
    counts: Counter[str] = Counter()
    for record in records:
        counts["records"] += 1
        made = completion_for(record)
        if made is None:
            counts["skipped"] += 1
            continue
        completion, position = made
        key = hashlib.sha256(json.dumps([record.messages, completion], sort_keys=True).encode()).hexdigest()
        if key in seen:
            counts["duplicates"] += 1
            continue
        seen.add(key)
        if record.actor == "human":
            counts["human_demonstrations"] += 1
        env = record.env or {}
        examples.append(Example(record.messages, completion, record.target["name"], position, record.run_id,
                                str(env.get("task") or record.task), env.get("seed")))
    runs = sorted({ex.run_id for ex in examples})
    rng.shuffle(runs)
    n_val = int(round(len(runs) * val_fraction)) if len(runs) > 1 else 0
    val_runs = set(runs[:n_val])
    unique_train = [ex for ex in examples if ex.run_id not in val_runs]
    val = [ex for ex in examples if ex.run_id in val_runs]
    train = _balance(_balance(unique_train, "action", repeat, rng), "position", repeat, rng)
    rng.shuffle(train)
    stats = {**counts, "examples": len(examples), "repeated_for_balance": len(train) - len(unique_train),
             "train": len(train), "train_unique": len(unique_train), "val": len(val), "episodes": len(runs),
             "by_action": dict(Counter(ex.action for ex in train)),
             "by_position": {str(k): v for k, v in sorted(Counter(ex.position for ex in train).items())},
             "seeds": sorted({f"{ex.task}:{ex.seed}" for ex in examples if ex.seed is not None})}
    return Prepared(train, val, stats)
