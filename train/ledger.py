"""A run's ledger as the model card's table: one row per evaluated epoch, read from `log.jsonl`.

    python -m train.ledger models/run-coco2k-256/log.jsonl models/run-coco2k-384/log.jsonl

Several logs are read in order, as one run continued in another folder (a fine-tune at another
input size resumes the state of the first). The input size of each row comes from the last
`start` record before it; logs written before start records existed give the size as `?`
unless `--input-size` names it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

COLUMNS = ("AP", "AP50", "AP75", "APM", "APL", "AR")


def evaluated_epochs(lines: Iterable[str], input_size: Optional[int] = None) -> Iterator[Dict[str, Any]]:
    """Each evaluated epoch record of a ledger, with the `input_size` it was trained and scored at."""
    size: Any = input_size
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("kind") == "start":
            size = record.get("args", {}).get("input_size", size)
        elif record.get("kind") == "epoch" and "eval" in record:
            yield {**record, "input_size": size}


def markdown(rows: List[Dict[str, Any]]) -> str:
    head = ["epoch", "steps", "input", "loss (mean)", "lr", "images/s", *COLUMNS, "people found"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in rows:
        e = r["eval"]
        cells = [
            str(r["epoch"]),
            str(r["step"]),
            "?" if r["input_size"] is None else str(r["input_size"]),
            f"{r['loss_mean']:.2f}",
            f"{r['lr']:.0e}",
            "" if r.get("images_per_s") is None else f"{r['images_per_s']:.1f}",
            *(f"{e[c]:.4f}" for c in COLUMNS),
            str(e.get("people_found", "")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.ledger", description=__doc__.split("\n")[0])
    p.add_argument("logs", nargs="+", help="log.jsonl files of one run, in order")
    p.add_argument("--input-size", type=int, help="the size of rows before the first start record")
    args = p.parse_args(argv)
    rows: List[Dict[str, Any]] = []
    size = args.input_size
    for path in args.logs:
        try:
            with open(path) as f:
                found = list(evaluated_epochs(f, size))
        except (OSError, ValueError) as err:
            p.error(f"{path}: {err}")
        rows += found
        size = found[-1]["input_size"] if found else size
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
