"""Make a tiny LoRA adapter over the embedded model with peft (run with the inference venv's python)."""

import argparse

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

parser = argparse.ArgumentParser()
parser.add_argument("model_dir")
parser.add_argument("out_dir")
parser.add_argument("--rank", type=int, default=4)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

torch.manual_seed(args.seed)
base = AutoModelForCausalLM.from_pretrained(args.model_dir, torch_dtype=torch.float32)
model = get_peft_model(base, LoraConfig(r=args.rank, lora_alpha=2 * args.rank, target_modules=["q_proj", "v_proj"],
                                        task_type="CAUSAL_LM"))
with torch.no_grad():  # non-zero B so the adapter really changes the output
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.normal_(std=0.02)
model.save_pretrained(args.out_dir)
print(args.out_dir)
