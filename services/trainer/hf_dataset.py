"""Save a prepared job's train/val JSONL as a Hugging Face `datasets` folder (run in the trainer's venv)."""

from __future__ import annotations

import sys
from pathlib import Path


def main(folder: Path) -> None:
    """FOLDER/train.jsonl, val.jsonl → FOLDER/hf (a DatasetDict with train and validation splits)."""
    from datasets import Dataset, DatasetDict

    splits = {}
    for name, file in (("train", "train.jsonl"), ("validation", "val.jsonl")):
        path = folder / file
        splits[name] = Dataset.from_json(str(path)) if path.stat().st_size else Dataset.from_list([])
    DatasetDict(splits).save_to_disk(str(folder / "hf"))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
