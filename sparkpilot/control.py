"""A person at the dashboard and a running worker: the live view's frames and taking control, over Redis.

Nothing here is stored in the database: frames are pub/sub only (a viewer sees them live or not at
all), and the control flag and the person's queued actions are Redis keys. What matters for the
record (control taken or returned, every human step) is written by the worker as events and steps.

Keys, per run:
  …:run:ID:frames   channel: {"kind": "frame", …} screencast frames and {"kind": "action", …} highlights
  …:run:ID:watch    set (with a TTL) while a dashboard shows the live view; the worker casts only then
  …:run:ID:control  "human" while a person has control
  …:run:ID:human    list of the person's actions (JSON), oldest first
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import redis
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from sparkpilot.settings import get_settings

WATCH_TTL_S = 6  # the gateway refreshes the watch key every WATCH_TTL_S / 3 while a viewer is connected
MAX_QUEUED_ACTIONS = 50


def frames_channel(run_id: str) -> str:
    """The pub/sub channel of a run's live frames and action highlights."""
    return get_settings().key("run", run_id, "frames")


def watch_key(run_id: str) -> str:
    """Set while someone watches the run live."""
    return get_settings().key("run", run_id, "watch")


def control_key(run_id: str) -> str:
    """'human' while a person has control of the run's browser."""
    return get_settings().key("run", run_id, "control")


def actions_key(run_id: str) -> str:
    """The person's queued actions."""
    return get_settings().key("run", run_id, "human")


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HumanClick(_Action):
    """Click at a point of the page, in CSS pixels of the viewport."""

    type: Literal["click"]
    x: float = Field(ge=0, le=10_000)
    y: float = Field(ge=0, le=10_000)


class HumanType(_Action):
    """Type text into whatever has focus."""

    type: Literal["type"]
    text: str = Field(min_length=1, max_length=2000)


class HumanPress(_Action):
    """Press a key (Enter, Tab, Escape, Backspace, ArrowDown, …)."""

    type: Literal["press"]
    key: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9+]+$")


class HumanScroll(_Action):
    """Scroll the page by dy (and dx) pixels."""

    type: Literal["scroll"]
    dx: int = Field(default=0, ge=-5000, le=5000)
    dy: int = Field(default=0, ge=-5000, le=5000)


HumanAction = Annotated[HumanClick | HumanType | HumanPress | HumanScroll, Field(discriminator="type")]
HUMAN_ACTION = TypeAdapter(HumanAction)


class ControlRequest(BaseModel):
    """Body of POST /api/v1/runs/{id}/control: take the browser from the agent, or hand it back."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["human", "agent"]


def set_control(client: redis.Redis, run_id: str, mode: str) -> None:
    """Give the run's browser to a person ('human') or back to the agent; queued actions go with a hand-back."""
    if mode == "human":
        client.set(control_key(run_id), "human", ex=24 * 3600)
    else:
        pipe = client.pipeline()
        pipe.delete(control_key(run_id))
        pipe.delete(actions_key(run_id))
        pipe.execute()


def queue_action(client: redis.Redis, run_id: str, action: BaseModel) -> int:
    """Queue a person's action for the worker; the queue's length after it."""
    pipe = client.pipeline()
    pipe.rpush(actions_key(run_id), action.model_dump_json())
    pipe.ltrim(actions_key(run_id), -MAX_QUEUED_ACTIONS, -1)
    pipe.expire(actions_key(run_id), 3600)
    return int(pipe.execute()[0])


def pop_action(client: redis.Redis, run_id: str) -> HumanClick | HumanType | HumanPress | HumanScroll | None:
    """The oldest queued action, or None."""
    raw = client.lpop(actions_key(run_id))
    return None if raw is None else HUMAN_ACTION.validate_python(json.loads(raw))


def frame_message(kind: str, **fields: Any) -> str:
    """A live-view message (never stored): a frame or an action highlight."""
    return json.dumps({"kind": kind, **fields}, separators=(",", ":"))
