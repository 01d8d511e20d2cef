from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CLAUDE = FIXTURES / "claude"
TRANSCRIPTS = sorted(p.name for p in CLAUDE.glob("claude_transcript_*.jsonl"))
