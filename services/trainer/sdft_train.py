"""Self-distillation fine-tuning (SDFT) of a LoRA adapter; run in the trainer's venv like lora_train.

`python -m services.trainer.sdft_train --config CONFIG.json`. Each step, for each example of the batch:
the student (base + trainable LoRA) samples an answer to the prompt (on-policy, no gradient); the
teacher (the same base with an EMA of the student's LoRA weights) sees the same prompt plus the
successful demonstration and scores the student's tokens; the loss is the reverse KL
D_KL(student ‖ teacher) over those tokens, with no SFT term. After the optimizer step the teacher's
LoRA tensors move toward the student's: teacher ← (1 − ema_alpha)·teacher + ema_alpha·student.
The teacher is a dict of LoRA tensors swapped in for its forward pass, never a second model copy.
Step 0 logs a KL diagnostic (near zero means the demonstration changes nothing: nothing to learn).
Checkpoints (adapter, optimizer, teacher tensors, step) and progress lines as lora_train writes them.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

from services.trainer.lora_train import emit, load_examples, load_model, save_adapter, save_checkpoint, setup

KL_DIAGNOSTIC_MIN = 0.01
DEMO_HINT = "\n\nA correct answer to this step, from a successful attempt: {demo}\nAnswer the same way."


def teacher_messages(messages: list[dict[str, Any]], demo: str) -> list[dict[str, Any]]:
    """The prompt the teacher sees: the student's, with the demonstration added to the last user turn."""
    out = [dict(m) for m in messages]
    last = out[-1]
    if isinstance(last.get("content"), str):
        last["content"] = last["content"] + DEMO_HINT.format(demo=demo)
    else:  # multimodal content: a text part at the end
        last["content"] = [*last["content"], {"type": "text", "text": DEMO_HINT.format(demo=demo)}]
    return out


def lora_tensors(model) -> dict[str, Any]:  # noqa: ANN001
    """The trainable LoRA tensors by name (the state the teacher keeps an EMA of)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def answer_logprobs(model, prompt_ids: list[int], answer_ids: list[int], device: str):  # noqa: ANN001, ANN201
    """Log-probabilities over the vocabulary at each answer position: [len(answer), vocab]."""
    import torch

    ids = torch.tensor([prompt_ids + answer_ids], device=device)
    logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()
    return torch.log_softmax(logits, dim=-1)


def main() -> int:
    """Train (or resume) with SDFT and write out/adapter."""
    cfg, hp, out, device, tok = setup(__doc__.splitlines()[0])
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    def encode_prompt(messages: list[dict[str, Any]]) -> list[int]:
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return tok(text, add_special_tokens=False)["input_ids"]

    examples = []
    for ex in load_examples(Path(cfg["train"])):
        student, teacher = encode_prompt(ex["messages"]), encode_prompt(teacher_messages(ex["messages"], ex["completion"]))
        if len(teacher) + hp["rollout_tokens"] <= hp["max_length"]:
            examples.append((student, teacher))
    if not examples:
        emit(event="error", message="no training example fits max_length with its demonstration and rollout")
        return 2
    model, backend = load_model(cfg, hp, device)
    params = lora_tensors(model)
    optimizer = torch.optim.AdamW(list(params.values()), lr=hp["learning_rate"])
    teacher = {n: p.detach().clone() for n, p in params.items()}
    start, ckpt = 0, out / "checkpoint"
    if (ckpt / "state.json").is_file():
        set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt"))
        teacher = {n: t.to(device) for n, t in load_file(str(ckpt / "teacher.safetensors")).items()}
        start = json.loads((ckpt / "state.json").read_text())["step"]

    def swap(weights: dict[str, Any]) -> dict[str, Any]:
        """Load `weights` into the LoRA tensors; returns what was there."""
        old = {}
        with torch.no_grad():
            for n, p in params.items():
                old[n] = p.detach().clone()
                p.copy_(weights[n])
        return old

    total, alpha = hp["steps"], hp["ema_alpha"]
    emit(event="start", total=total, examples=len(examples), val_examples=0, resumed_from=start, device=device,
         backend=backend, method="sdft")
    rng = random.Random(hp["seed"] * 1_000_003 + start)
    model.train()
    t0 = time.perf_counter()
    for step in range(start + 1, total + 1):
        batch = [examples[rng.randrange(len(examples))] for _ in range(hp["batch_size"])]
        step_kl = 0.0
        for student_ids, teacher_ids in batch:
            with torch.no_grad():  # on-policy rollout: the student answers as it would at run time
                model.eval()
                gen = model.generate(input_ids=torch.tensor([student_ids], device=device), do_sample=True,
                                     temperature=1.0, top_p=1.0, max_new_tokens=hp["rollout_tokens"],
                                     pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
                model.train()
                answer = gen[0, len(student_ids):].tolist()
                if not answer:
                    continue
                current = swap(teacher)
                teacher_lp = answer_logprobs(model, teacher_ids, answer, device)
                swap(current)
            student_lp = answer_logprobs(model, student_ids, answer, device)
            # Reverse KL, exact over the vocabulary at each sampled position, averaged over positions.
            kl = (student_lp.exp() * (student_lp - teacher_lp)).sum(-1).mean()
            (kl / len(batch)).backward()
            step_kl += kl.detach().item() / len(batch)
        if step == 1 and start == 0:
            emit(event="diagnostic", step=0, kl=round(step_kl, 5), weak=step_kl < KL_DIAGNOSTIC_MIN)
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():
            for n, p in params.items():
                teacher[n].mul_(1 - alpha).add_(p.detach(), alpha=alpha)
        if not math.isfinite(step_kl):
            emit(event="error", message=f"KL is {step_kl} at step {step}")
            return 3
        per_step = (time.perf_counter() - t0) / (step - start)
        emit(event="step", step=step, total=total, loss=round(step_kl, 5), eta_s=round(per_step * (total - step), 1))
        if step % hp["save_every"] == 0 or step == total:
            save_checkpoint(model, optimizer, step, out,
                            extra=lambda folder: save_file({n: t.contiguous().cpu() for n, t in teacher.items()},
                                                           str(folder / "teacher.safetensors")))
            emit(event="checkpoint", step=step)
    adapter = save_adapter(model, out, cfg["base_name"])
    emit(event="done", val_loss=None, seconds=round(time.perf_counter() - t0, 1), adapter=str(adapter))
    return 0


if __name__ == "__main__":
    sys.exit(main())
