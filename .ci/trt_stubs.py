"""Install the published TensorRT type stubs for mypy, repairing the lines Python cannot parse.

tensorrt-stubs (every release up to 10.13.0.35.1) has a few signatures that are not valid
Python: parameters named `in`, and a parameter without a default after ones with defaults. Those
lines are repaired (`in` -> `in_`, `= ...` defaults added); nothing else changes, so every name and
signature the project's code uses is checked against the stubs as published.

    python .ci/trt_stubs.py TARGET_DIR
"""

import ast
import pathlib
import re
import subprocess
import sys

VERSION = "10.13.0.35.1"


def repair_def(line: str) -> str:
    line = re.sub(r"([(,]\s*)in(\s*:)", r"\1in_\2", line)
    try:
        ast.parse(line.strip() + "\n    ...")
        return line
    except SyntaxError:
        pass
    head, _, rest = line.partition("(")
    params, close, tail = rest.rpartition(")")
    parts, seen_default = [], False
    for p in params.split(", "):
        if "=" in p:
            seen_default = True
        elif seen_default and ":" in p and not p.strip().startswith("*"):
            p += " = ..."
        parts.append(p)
    return head + "(" + ", ".join(parts) + close + tail


def main(target: str) -> None:
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target]
    subprocess.run([*pip, f"tensorrt-stubs=={VERSION}"], check=True)
    for path in pathlib.Path(target).rglob("*.pyi"):
        lines = path.read_text().splitlines(keepends=True)
        fixed = [repair_def(x) if x.lstrip().startswith("def ") else x for x in lines]
        if fixed != lines:
            path.write_text("".join(fixed))
            ast.parse("".join(fixed))  # fail loudly if anything is still unparsable


if __name__ == "__main__":
    main(sys.argv[1])
