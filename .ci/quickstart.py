"""Print the README's Quick start command N (1: the main job, 2: the tests), so CI runs exactly
what a new user copies, in the order the README gives them."""

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_commands(text: str) -> list:
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


if __name__ == "__main__":
    commands = quickstart_commands(README.read_text())
    if len(commands) != 2:
        sys.exit(f"README Quick start should hold 2 commands, found {len(commands)}")
    print(commands[int(sys.argv[1]) - 1])
