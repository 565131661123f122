"""A zero-weight LoRA adapter for the served base model, written with the standard library only.

Deployment checks (scripts/validate-deployment.sh) need an adapter to load and unload without a
training run; its B matrices are zero, so it changes no answer. The shapes come from the base
model's config.json (a prepared folder, or the Hugging Face cache under HF_HOME in compose).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

TARGETS = ("q_proj", "v_proj")


def find_config(model: str, model_dir: str, hf_home: str | None = None) -> Path:
    """config.json of the base model: in `model_dir`, else in the hub cache for the id `model`."""
    if model_dir:
        path = Path(model_dir) / "config.json"
        if path.is_file():
            return path
        raise FileNotFoundError(f"no config.json in {model_dir}")
    home = Path(hf_home or os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    snapshots = home / "hub" / f"models--{model.replace('/', '--')}" / "snapshots"
    found = sorted(snapshots.glob("*/config.json"))
    if not found:
        raise FileNotFoundError(f"{model} is not in the Hugging Face cache at {home} (has vLLM downloaded it?)")
    return found[-1]


def _dims(config: dict[str, Any]) -> tuple[int, int, int, int]:
    """(layers, hidden, q_out, v_out) of the language model (top level, or text_config for VLMs)."""
    text = config.get("text_config") or {}
    get = lambda k: text.get(k, config.get(k))  # noqa: E731
    hidden, heads = int(get("hidden_size")), int(get("num_attention_heads"))
    head_dim = int(get("head_dim") or hidden // heads)
    kv_heads = int(get("num_key_value_heads") or heads)
    return int(get("num_hidden_layers")), hidden, heads * head_dim, kv_heads * head_dim


def _write_safetensors(path: Path, shapes: dict[str, tuple[int, int]]) -> None:
    """Zero float32 tensors in the safetensors layout (8-byte header size, JSON header, raw data)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (rows, cols) in shapes.items():
        size = rows * cols * 4
        header[name] = {"dtype": "F32", "shape": [rows, cols], "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        chunk = bytes(1 << 20)
        left = offset
        while left:
            fh.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))


def write_blank_adapter(out: Path, base_model: str, config_path: Path, rank: int = 8) -> Path:
    """A PEFT LoRA folder (adapter_config.json + adapter_model.safetensors) with zero effect."""
    layers, hidden, q_out, v_out = _dims(json.loads(config_path.read_text()))
    shapes: dict[str, tuple[int, int]] = {}
    for i in range(layers):
        for target, out_dim in (("q_proj", q_out), ("v_proj", v_out)):
            prefix = f"base_model.model.model.layers.{i}.self_attn.{target}"
            shapes[f"{prefix}.lora_A.weight"] = (rank, hidden)
            shapes[f"{prefix}.lora_B.weight"] = (out_dim, rank)
    out.mkdir(parents=True, exist_ok=True)
    _write_safetensors(out / "adapter_model.safetensors", shapes)
    (out / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model, "r": rank,
        "lora_alpha": rank, "lora_dropout": 0.0, "bias": "none", "target_modules": list(TARGETS),
        "fan_in_fan_out": False, "inference_mode": True,
    }, indent=2))
    return out
