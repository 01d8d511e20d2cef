"""Attestations not yet accepted by the server: `<git common dir>/tracemark/spool/` (SPEC §2.6).

One JSON file per attestation (`<session>-<digest12>.json`) holding the DSSE envelope, the server
it is meant for, the sha256 of the canonical envelope, and (optionally) the name, sha256 and size
of its redacted transcript (`<digest12>.jsonl.gz` next to it). Files are written atomically (a
temp file then rename), so a crash or a full disk never leaves half an item. Before anything is
sent, an item is checked: envelope digest, DSSE signature against our own public key, and the
transcript's hash and size against the signed statement; a tampered item is moved to
`spool/rejected/` and never sent as valid. Other 4xx answers also move an item to `rejected/`,
with the server's message, and it is not retried.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tracemark.capture.state import atomic_write
from tracemark_common import dsse

FORMAT = 1
MAX_ITEM_BYTES = 64 * 1024 * 1024


class SpoolError(Exception):
    """The spool cannot be written (disk full, read-only, permissions)."""


class TamperedError(Exception):
    """A spooled item does not match what was signed."""


@dataclass
class SpoolItem:
    session_id: str
    server: str
    envelope: dict[str, Any]
    envelope_sha256: str = ""
    transcript_file: str = ""
    transcript_sha256: str = ""
    transcript_size: int = 0
    created_at: str = ""
    attempts: int = 0
    last_error: str = ""
    fingerprint: str = ""  # what was attested (commits + transcript state), for the push ledger
    path: Path | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "session_id": self.session_id,
            "server": self.server,
            "envelope": self.envelope,
            "envelope_sha256": self.envelope_sha256 or dsse.envelope_digest(self.envelope),
            "transcript": (
                {"file": self.transcript_file, "sha256": self.transcript_sha256, "size": self.transcript_size}
                if self.transcript_file
                else None
            ),
            "created_at": self.created_at or _now(),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "fingerprint": self.fingerprint,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def file_sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class Spool:
    def __init__(self, state_dir: str | Path) -> None:
        self.root = Path(state_dir) / "spool"
        self.rejected = self.root / "rejected"

    def _ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create {self.root}: {exc.strerror or exc}") from exc

    def staging_path(self, name: str) -> Path:
        """Where a transcript for a future item is written (inside the spool, same filesystem)."""
        self._ensure()
        return self.root / name

    def add(self, item: SpoolItem) -> Path:
        self._ensure()
        item.envelope_sha256 = item.envelope_sha256 or dsse.envelope_digest(item.envelope)
        path = item.path or self.root / f"{item.session_id}-{item.envelope_sha256[:12]}.json"
        try:
            atomic_write(path, json.dumps(item.to_json(), indent=1).encode(), durable=True)
        except OSError as exc:
            raise SpoolError(f"cannot write {path.name} to the spool: {exc.strerror or exc}") from exc
        item.path = path
        return path

    def pending(self) -> list[Path]:
        try:
            return sorted(p for p in self.root.glob("*.json") if p.is_file())
        except OSError:
            return []

    def has_pending(self) -> bool:
        try:
            with os.scandir(self.root) as entries:
                return any(e.name.endswith(".json") and e.is_file() for e in entries)
        except OSError:
            return False

    def load(self, path: Path) -> SpoolItem:
        """Read one item; raises TamperedError when it is not a well-formed spool item."""
        try:
            if path.stat().st_size > MAX_ITEM_BYTES:
                raise TamperedError(f"{path.name} is larger than {MAX_ITEM_BYTES} bytes")
            raw = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise TamperedError(f"{path.name} is not readable JSON: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("envelope"), dict):
            raise TamperedError(f"{path.name} is not a tracemark spool item")
        transcript: dict[str, Any] = raw["transcript"] if isinstance(raw.get("transcript"), dict) else {}
        try:
            return SpoolItem(
                session_id=str(raw["session_id"]),
                server=str(raw["server"]),
                envelope=raw["envelope"],
                envelope_sha256=str(raw["envelope_sha256"]),
                transcript_file=str(transcript.get("file") or ""),
                transcript_sha256=str(transcript.get("sha256") or ""),
                transcript_size=int(transcript.get("size") or 0),
                created_at=str(raw.get("created_at", "")),
                attempts=int(raw.get("attempts", 0)),
                last_error=str(raw.get("last_error", "")),
                fingerprint=str(raw.get("fingerprint", "")),
                path=path,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TamperedError(f"{path.name} is missing fields: {exc}") from exc

    def transcript_path(self, item: SpoolItem) -> Path | None:
        if not item.transcript_file:
            return None
        name = Path(item.transcript_file).name  # never leave the spool directory
        return self.root / name

    def check(self, item: SpoolItem, trusted: dict[str, dsse.PublicKey] | None) -> None:
        """Raise TamperedError unless the item is exactly what was signed."""
        if dsse.envelope_digest(item.envelope) != item.envelope_sha256:
            raise TamperedError("the envelope does not match its recorded digest")
        if trusted:
            try:
                dsse.verify(item.envelope, trusted)
            except dsse.DsseError as exc:
                raise TamperedError(f"the signature does not verify: {exc}") from exc
        try:
            statement = json.loads(base64.b64decode(item.envelope["payload"]))
            predicate = statement["predicate"]
        except (KeyError, TypeError, ValueError) as exc:
            raise TamperedError("the signed payload is not a statement") from exc
        signed = predicate.get("transcript") if isinstance(predicate, dict) else None
        path = self.transcript_path(item)
        if signed is None:
            return
        if path is None or not path.is_file():
            raise TamperedError("the transcript named in the statement is missing from the spool")
        sha, size = file_sha256(path)
        if not isinstance(signed, dict) or signed.get("sha256") != sha or signed.get("size") != size:
            raise TamperedError("the spooled transcript does not match the signed sha256/size")

    def update(self, item: SpoolItem, error: str) -> None:
        item.attempts += 1
        item.last_error = error[:1000]
        with contextlib.suppress(SpoolError):
            self.add(item)

    def remove(self, item: SpoolItem) -> None:
        transcript = self.transcript_path(item)
        for path in (item.path, transcript):
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def reject(self, item_path: Path, reason: str, transcript: Path | None = None) -> Path:
        """Move an item (and its transcript) to `rejected/`, with the reason next to it."""
        try:
            self.rejected.mkdir(parents=True, exist_ok=True)
            target = self.rejected / item_path.name
            with contextlib.suppress(FileNotFoundError):
                item_path.replace(target)
            if transcript is not None:
                with contextlib.suppress(FileNotFoundError):
                    transcript.replace(self.rejected / transcript.name)
            atomic_write(
                self.rejected / (item_path.stem + ".reason.txt"), (reason.rstrip() + "\n").encode("utf-8", "replace")
            )
        except OSError as exc:
            raise SpoolError(f"cannot move {item_path.name} to {self.rejected}: {exc.strerror or exc}") from exc
        return target
