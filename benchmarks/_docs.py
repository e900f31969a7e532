"""One place for the benchmarks' write-back: replace a `## ` section of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path


def write_section(path, section: str, text: str) -> None:
    """Replace the section titled `section` (from its `## ` line to the next one) in the Markdown
    file `path` by `text`, or append `text` when the section is missing; other sections are kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = old.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == section), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        new = "\n".join(lines[:start] + text.rstrip("\n").splitlines() + ([""] + lines[end:] if end < len(lines) else [])) + "\n"
    path.write_text(new)
