"""The prompt, built truncation-safe: rules first, then the last error and short history, page last."""

from __future__ import annotations

from services.worker.agent.actions import REGISTRY
from services.worker.agent.observe import Observation, render_elements

SYSTEM = """You are a web agent operating a browser. Each turn you see the goal, the page's elements
as `[bid] role "text"`, and the page text. Reply with ONE action as JSON:
{"thought": "<one short sentence>", "action": {"name": "<action>", ...arguments}}
Actions:
%s
Rules: use only bids from the element list; fill inputs before submitting; call finish(answer)
when the goal is reached, with the answer if the goal asks for one."""

CHARS_PER_TOKEN = 4  # rough, model-independent; the budget keeps the page last so it is what gets cut


def system_prompt() -> str:
    """Goal-independent instructions listing every registered action."""
    return SYSTEM % "\n".join(f"- {spec.description}" for spec in REGISTRY.values())


def build_messages(goal: str, obs: Observation, history: list[str], last_error: str | None,
                   token_budget: int = 1500) -> list[dict[str, str]]:
    """Chat messages for one step, within `token_budget` tokens (approximately)."""
    head = [f"GOAL: {goal}"]
    if last_error:
        head.append(f"LAST ERROR: {last_error}")
    if history:
        head.append("PREVIOUS ACTIONS:\n" + "\n".join(history[-5:]))
    head.append(f"PAGE: {obs.title} ({obs.url})")
    system = system_prompt()
    budget = token_budget * CHARS_PER_TOKEN - len(system) - sum(len(h) + 1 for h in head)
    element_budget = max(200, int(budget * 0.7))
    elements = render_elements(obs.elements, element_budget)
    text_budget = max(0, budget - len(elements) - 40)
    page_text = obs.text[:text_budget]
    user = "\n".join(head) + "\nELEMENTS:\n" + elements + ("\nPAGE TEXT:\n" + page_text if page_text else "")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
