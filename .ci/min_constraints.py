"""Print pip constraints that pin every runtime dependency of occ to the oldest version pyproject.toml
declares (its ``>=`` floor), so CI can run the tests against what a user may really have installed."""

from __future__ import annotations

import re
import sys
import tomllib

FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")


def floors(pyproject: str) -> list[str]:
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    pins = []
    for requirement in project.get("dependencies", []):
        match = FLOOR.match(requirement)
        if match is None:
            raise SystemExit(f"dependency without a >= floor: {requirement!r}")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


if __name__ == "__main__":
    print("\n".join(floors(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml")))
