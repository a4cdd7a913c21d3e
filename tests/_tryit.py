"""What the Try this tests of the tutorial share: the section a page states its results in,
and examples started as processes, found by their ``listening on`` line."""

from __future__ import annotations

import re
import select
import subprocess
import sys
from pathlib import Path

HANG_GUARD = 30.0  # seconds; a hang guard for slow machines, not a performance claim


def try_this(page: Path) -> str:
    """The page's Try this section, its lines joined (a stated result may wrap)."""
    text = page.read_text(encoding="utf-8")
    section = text.split("## Try this", 1)[1].split("## What you now know", 1)[0]
    return " ".join(section.split())


class Examples:
    """Starts example servers; :meth:`stop_all` kills the ones still running."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, script: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
        """``script --port 0 *args``: the process, and the port of its listening line."""
        proc = subprocess.Popen(
            [sys.executable, str(script), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        assert select.select([proc.stdout], [], [], HANG_GUARD)[0], "no listening line"
        line = proc.stdout.readline().rstrip("\n")
        match = re.fullmatch(r"listening on http://127\.0\.0\.1:(\d+)", line)
        assert match, f"{script.name}: unexpected first line {line!r}"
        return proc, int(match[1])

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
