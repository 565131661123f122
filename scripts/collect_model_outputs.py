"""Collect raw (unconstrained) action outputs from the small model, for the parser's tests.

Asks a running vLLM server realistic agent prompts WITHOUT a JSON schema, so the outputs
show how sloppy the small model really is, and saves them as a JSON list of
{"prompt_id", "output"} records.

    python scripts/collect_model_outputs.py --base-url http://127.0.0.1:8021/v1 \
        --model smollm2-135m-instruct --samples 48 --out tests/unit/data/small_model_outputs.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from sparkpilot.llm_client import LLMClient

SYSTEM_BARE = (
    "You are a web agent. You see a goal and a list of page elements, each with an id in "
    "brackets. Choose the next action.\n"
    "Actions: click(bid), fill(bid, text), select_option(bid, value), press(key, bid), "
    "scroll(dx, dy), goto(url), go_back(), send_msg_to_user(text), finish(answer).\n"
    'Answer with one JSON object only: {"thought": "...", "action": {"name": "<action>", ...params}}'
)
# Half the samples get a worked example (which the small model tends to copy verbatim).
SYSTEM_EXAMPLE = SYSTEM_BARE + (
    '\nExample: {"thought": "The search box is 7.", "action": {"name": "fill", "bid": "7", "text": "cats"}}'
)

PROMPTS: dict[str, tuple[str, str]] = {
    "submit": ("Click the Submit button.",
               '[12] button "Submit"\n[7] textbox "Search"\n[3] link "Home"'),
    "search": ("Search for 'red shoes'.",
               '[7] textbox "Search"\n[12] button "Search"\n[15] link "Cart"'),
    "select": ("Choose 'Blue' in the color menu, then submit.",
               '[a4] combobox "Color" options: Red, Green, Blue\n[a9] button "Submit"'),
    "login": ("Log in as user 'alice' with password 'pw123'.",
               '[21] textbox "Username"\n[22] textbox "Password"\n[23] button "Log in"'),
    "answer": ("What is the total shown on the page? Answer with the number.",
               '[5] heading "Your order"\n[6] text "Total: $42.50"\n[8] button "Pay"'),
    "navigate": ("Open the page http://localhost:8000/about.",
               '[1] link "Blog"\n[2] link "Contact"'),
    "scroll": ("Find the 'Terms' link at the bottom of the page and click it.",
               '[30] heading "Welcome"\n[31] text "Lorem ipsum dolor sit amet"'),
    "enter": ("Type 'weather' in the search box and press Enter.",
               '[7] textbox "Search" value="weather"\n[12] button "Go"'),
}


def messages_for(prompt_id: str, example: bool) -> list[dict[str, str]]:
    """The chat messages for one prompt, with or without the worked example."""
    goal, elements = PROMPTS[prompt_id]
    user = f"Goal: {goal}\n\nElements:\n{elements}\n\nYour next action as JSON:"
    system = SYSTEM_EXAMPLE if example else SYSTEM_BARE
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def collect(base_url: str, model: str, samples: int, concurrency: int) -> list[dict[str, str]]:
    """`samples` outputs, prompts taken round-robin, `concurrency` requests at a time."""
    names = list(PROMPTS)
    jobs = [(names[i % len(names)], (i // len(names)) % 2 == 0) for i in range(samples)]
    sem = asyncio.Semaphore(concurrency)
    async with LLMClient(base_url, model, timeout_s=300) as client:
        async def one(pid: str, example: bool) -> dict[str, str]:
            async with sem:
                out = await client.complete(messages_for(pid, example), max_tokens=120, temperature=0.7)
            return {"prompt_id": f"{pid}{'+example' if example else ''}", "output": out.text}
        return list(await asyncio.gather(*(one(pid, ex) for pid, ex in jobs)))


def main() -> None:
    """Command line entry."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8021/v1")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("tests/unit/data/small_model_outputs.json"))
    args = ap.parse_args()
    records = asyncio.run(collect(args.base_url, args.model, args.samples, args.concurrency))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} outputs to {args.out}")


if __name__ == "__main__":
    main()
