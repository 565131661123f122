"""LoRA supervised fine-tuning of the served base model on prepared chat examples; run in the trainer's venv.

`python -m services.trainer.lora_train --config CONFIG.json` (torch, transformers and peft only; no
Sparkpilot imports, so it runs in .venv-trainer or the trainer image). The loss covers the answer
tokens only. A checkpoint (adapter weights, optimizer, step) is written atomically every
`save_every` steps; a second start with the same output folder resumes from it. Progress goes to
stdout as one JSON object per line, which the trainer turns into job progress.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any


def emit(**event: Any) -> None:
    """One progress line for the orchestrator."""
    print(json.dumps(event), flush=True)


def load_examples(path: Path) -> list[dict[str, Any]]:
    """Chat examples: {"messages": [...], "completion": "..."} per line."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def encode(tok, example: dict[str, Any], max_length: int) -> tuple[list[int], list[int]] | None:  # noqa: ANN001
    """(input ids, labels) with the prompt masked out; None if it does not fit `max_length`."""
    prompt = tok.apply_chat_template(example["messages"], add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template([*example["messages"], {"role": "assistant", "content": example["completion"]}],
                                   tokenize=False)
    if not full.startswith(prompt):  # a template that rewrites earlier turns: fall back to concatenation
        full = prompt + example["completion"] + (tok.eos_token or "")
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    ids = tok(full, add_special_tokens=False)["input_ids"]
    if len(ids) > max_length or len(ids) <= len(prompt_ids):
        return None
    return ids, [-100] * len(prompt_ids) + ids[len(prompt_ids):]


def batches(data: list[tuple[list[int], list[int]]], size: int, rng: random.Random, pad: int):  # noqa: ANN201
    """An endless stream of padded (ids, labels, mask) batches in a seeded order."""
    import torch

    while True:
        order = list(range(len(data)))
        rng.shuffle(order)
        for i in range(0, len(order), size):
            chunk = [data[j] for j in order[i:i + size]]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in chunk])
            labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in chunk])
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in chunk])
            yield ids, labels, mask


def mean_loss(model, data, size: int, pad: int) -> float | None:  # noqa: ANN001
    """Answer-token loss over `data` (validation)."""
    import torch

    if not data:
        return None
    total, n = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(data), size):
            ids, labels, mask = next(batches(data[i:i + size], size, random.Random(0), pad))
            total += float(model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                 labels=labels.to(model.device)).loss) * len(ids)
            n += len(ids)
    model.train()
    return total / n


def save_checkpoint(model, optimizer, step: int, out: Path, extra=None) -> None:  # noqa: ANN001
    """Adapter weights + optimizer + step (+ what `extra(folder)` writes) into out/checkpoint, swapped in atomically."""
    import torch

    tmp = out / "checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if extra is not None:
        extra(tmp)
    (tmp / "state.json").write_text(json.dumps({"step": step}))
    final = out / "checkpoint"
    old = out / "checkpoint.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_model(cfg: dict[str, Any], hp: dict[str, Any], device: str):  # noqa: ANN201
    """(peft model, backend): Unsloth 4-bit, or transformers + bitsandbytes 4-bit, on CUDA; float32 on CPU.

    GPU-only paths (never run on the CPU-only CI machine; tests/integration/test_gpu.py covers them).
    """
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    lora = dict(r=hp["rank"], lora_alpha=hp["alpha"], lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    if device == "cuda" and not cfg.get("init_adapter") and importlib.util.find_spec("unsloth") is not None:
        from unsloth import FastLanguageModel

        model, _tok = FastLanguageModel.from_pretrained(cfg["base_model"], max_seq_length=hp["max_length"],
                                                        load_in_4bit=True, dtype=None)
        return FastLanguageModel.get_peft_model(model, **lora, bias="none", use_gradient_checkpointing=False,
                                                random_state=hp["seed"]), "unsloth-4bit"
    if device == "cuda" and importlib.util.find_spec("bitsandbytes") is not None:
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
        base = AutoModelForCausalLM.from_pretrained(cfg["base_model"], quantization_config=quant, device_map={"": 0})
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
        backend = "bitsandbytes-4bit"
    else:
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        base = AutoModelForCausalLM.from_pretrained(cfg["base_model"], dtype=dtype).to(device)
        backend = f"{device}-{'bf16' if device == 'cuda' else 'fp32'}"
    if cfg.get("init_adapter"):  # continue from an adapter (the next round may start from the promoted one)
        return PeftModel.from_pretrained(base, cfg["init_adapter"], is_trainable=True), backend
    return get_peft_model(base, LoraConfig(**lora, task_type="CAUSAL_LM")), backend


def setup(description: str):  # noqa: ANN201
    """Parse --config, seed torch, pick the device: (config, hyperparameters, out folder, device, tokenizer)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, type=Path)
    cfg = json.loads(parser.parse_args().config.read_text())
    hp, out = cfg["hyperparameters"], Path(cfg["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(hp["seed"])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return cfg, hp, out, device, AutoTokenizer.from_pretrained(cfg["base_model"])


def save_adapter(model, out: Path, base_name: str) -> Path:  # noqa: ANN001
    """out/adapter, its config naming the served base (what the registry checks against)."""
    adapter = out / "adapter"
    shutil.rmtree(adapter, ignore_errors=True)
    model.save_pretrained(adapter)
    config_file = adapter / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = base_name
    config_file.write_text(json.dumps(config, indent=2))
    return adapter


def main() -> int:
    """Train (or resume) and write out/adapter."""
    cfg, hp, out, device, tok = setup(__doc__.splitlines()[0])
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    train = [e for e in (encode(tok, x, hp["max_length"]) for x in load_examples(Path(cfg["train"]))) if e]
    val = [e for e in (encode(tok, x, hp["max_length"]) for x in load_examples(Path(cfg["val"]))) if e]
    if not train:
        emit(event="error", message="no training example fits max_length")
        return 2
    model, backend = load_model(cfg, hp, device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=hp["learning_rate"])
    start = 0
    ckpt = out / "checkpoint"
    if (ckpt / "state.json").is_file():
        set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt"))
        start = json.loads((ckpt / "state.json").read_text())["step"]
    total = hp["steps"]
    emit(event="start", total=total, examples=len(train), val_examples=len(val), resumed_from=start, device=device,
         backend=backend)
    rng = random.Random(hp["seed"] * 1_000_003 + start)  # a resumed run draws new batches, deterministically
    stream = batches(train, hp["batch_size"], rng, pad)
    model.train()
    t0 = time.perf_counter()
    for step in range(start + 1, total + 1):
        ids, labels, mask = next(stream)
        loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad()
        per_step = (time.perf_counter() - t0) / (step - start)
        value = loss.detach().item()
        if not math.isfinite(value):
            emit(event="error", message=f"loss is {value} at step {step}")
            return 3
        emit(event="step", step=step, total=total, loss=round(value, 5), eta_s=round(per_step * (total - step), 1))
        if step % hp["save_every"] == 0 or step == total:
            save_checkpoint(model, optimizer, step, out)
            emit(event="checkpoint", step=step)
    val_loss = mean_loss(model, val, hp["batch_size"], pad)
    adapter = save_adapter(model, out, cfg["base_name"])
    emit(event="done", val_loss=None if val_loss is None else round(val_loss, 5),
         seconds=round(time.perf_counter() - t0, 1), adapter=str(adapter))
    return 0


if __name__ == "__main__":
    sys.exit(main())
