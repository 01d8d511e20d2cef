"""`make bench`: run every benchmark script in this folder; each rewrites its README section."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = {"run_all.py", "report.py"}
ARGS = {"hook_latency.py": ["--readme"]}  # scripts that print only unless asked to write


def main() -> int:
    failures = 0
    for script in sorted(HERE.glob("*.py")):
        if script.name in SKIP or script.name.startswith("_"):
            continue
        print(f"== {script.name}", flush=True)
        result = subprocess.run([sys.executable, str(script), *ARGS.get(script.name, [])], cwd=HERE, check=False)
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
