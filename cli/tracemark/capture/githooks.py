"""Git hook handlers: commit-msg (trailer), post-commit (commit record), post-rewrite, pre-push.

Commit records (`commits/<sha>.json`) hold, per file of the commit, the lines the commit added
that an agent session wrote (1-based ranges in the committed file) and the lines an agent removed.
See docs/capture.md for the format and `tracemark.capture.records` for the reader.
"""
# os.path on purpose: this module is on the hook hot path (pathlib costs import time)
# ruff: noqa: PTH100, PTH108, PTH110, PTH112, PTH116, PTH118, PTH123, PTH208

from __future__ import annotations

import contextlib
import os
import re
import time

from tracemark import gitutil
from tracemark.capture import lines as L
from tracemark.capture.filestate import FileState, content_sha
from tracemark.capture.state import StateDir, atomic_write, now_iso, valid_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from tracemark.gitutil import Repo

TRAILER_KEY = "Tracemark-Sessions"
_OUR_TRAILER = re.compile(r"^Tracemark-Sessions:[^\S\n]*(.*)$", re.IGNORECASE | re.MULTILINE)
ZERO_SHA = "0" * 40
SNAPSHOT_MAX_AGE_S = 24 * 3600
STATE_MAX_AGE_S = (
    30 * 24 * 3600
)  # file states untouched this long are forgotten (their lines were committed or abandoned)


def trailer_session_ids(message: str) -> list[str]:
    """Session ids of every `Tracemark-Sessions`/`Chainloop-Trace-Sessions` line (SPEC §2.4)."""
    try:
        from tracemark_common.trailers import session_ids
    except ImportError:  # pragma: no cover - the shared package ships with the CLI
        found: dict[str, None] = {}
        for match in re.finditer(
            r"^(?:Tracemark-Sessions|Chainloop-Trace-Sessions):[^\S\n]*(.*)$", message, re.IGNORECASE | re.MULTILINE
        ):
            for part in match.group(1).split(","):
                if valid_id(part.strip()):
                    found.setdefault(part.strip(), None)
        return list(found)
    return session_ids(message)


def session_of(owner: str) -> str:
    return owner.split("/", 1)[0]


def worktree_states(sd: StateDir, root: str) -> list[FileState]:
    """Every file state of this work tree that still holds something (AI lines, removals, tools)."""
    directory = sd.path("files")
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    states: list[FileState] = []
    for name in names:
        if not name.endswith(".json"):
            continue
        raw = sd.read_json(os.path.join("files", name))
        if not isinstance(raw, dict) or raw.get("root") != root or not isinstance(raw.get("path"), str):
            continue
        state = FileState(root, raw["path"])
        state.load_dict(raw)
        if not state.is_idle():
            states.append(state)
    return states


class FileAnalysis:
    """What one commit (or staged index) did to one file, per owner."""

    __slots__ = ("added", "ai", "consumed", "removed", "removed_total")

    def __init__(self) -> None:
        self.added = 0
        self.removed_total = 0
        self.ai: dict[str, list[int]] = {}
        self.removed: dict[str, int] = {}
        self.consumed: dict[str, list[str]] = {}


def analyze(sd: StateDir, state: FileState, base: bytes | None, target: bytes | None) -> FileAnalysis:
    """Owners of the lines `target` adds over `base`, and of the lines it removes."""
    result = FileAnalysis()
    target_lines = L.split_lines(target or b"")
    base_lines = L.split_lines(base or b"")
    target_sha = content_sha(target)
    if state.sha == target_sha and len(state.owners) == len(target_lines):
        owners = state.owners
    else:
        known = state.known_lines(sd)
        if known is None or len(known) != len(state.owners):
            owners = [None] * len(target_lines)
        else:
            owners = L.carry(known, state.owners, target_lines)
    mapping = L.match(base_lines, target_lines)
    for j, i in enumerate(mapping):
        if i < 0:
            result.added += 1
            owner = owners[j]
            if owner:
                result.ai.setdefault(owner, []).append(j + 1)
    kept = {i for i in mapping if i >= 0}
    pools = {owner: list(keys) for owner, keys in sorted(state.removed.items())}
    for i, line in enumerate(base_lines):
        if i in kept:
            continue
        result.removed_total += 1
        key = L.line_key(line)
        for owner, pool in pools.items():
            if key in pool:
                pool.remove(key)
                result.removed[owner] = result.removed.get(owner, 0) + 1
                result.consumed.setdefault(owner, []).append(key)
                break
    return result


def file_entry(path: str, status: str, analysis: FileAnalysis) -> dict[str, object]:
    sessions: dict[str, dict[str, object]] = {}
    for owner, numbers in analysis.ai.items():
        sid, _, agent = owner.partition("/")
        entry = sessions.setdefault(sid, {"lines": [], "removed": 0, "agents": {}})
        entry["lines"] = [*list(entry["lines"]), *numbers]  # type: ignore[call-overload]
        if agent:
            agents = entry["agents"]
            assert isinstance(agents, dict)
            agents[agent] = L.to_ranges([*L.from_ranges(agents.get(agent, [])), *numbers])
    for owner, count in analysis.removed.items():
        sid = session_of(owner)
        entry = sessions.setdefault(sid, {"lines": [], "removed": 0, "agents": {}})
        entry["removed"] = int(str(entry["removed"])) + count
    ai_lines = 0
    for entry in sessions.values():
        numbers = sorted(set(entry.pop("lines")))  # type: ignore[call-overload]
        entry["ranges"] = L.to_ranges(numbers)
        entry["line_count"] = len(numbers)
        ai_lines += len(numbers)
        if not entry["agents"]:
            del entry["agents"]
    return {
        "path": path,
        "status": status,
        "lines_added": analysis.added,
        "lines_removed": analysis.removed_total,
        "human_lines_added": analysis.added - ai_lines,
        "sessions": sessions,
    }


def _in_rebase(repo: Repo) -> bool:
    return any(os.path.isdir(os.path.join(repo.git_dir, name)) for name in ("rebase-merge", "rebase-apply"))


# -- commit-msg ---------------------------------------------------------------------------------
def commit_msg(repo: Repo, sd: StateDir, msg_path: str) -> tuple[str, str]:
    if os.path.exists(os.path.join(repo.git_dir, "MERGE_HEAD")):
        return "skipped", "merge commit"
    if _in_rebase(repo):
        return "skipped", "rebase in progress (post-rewrite carries records)"
    states = worktree_states(sd, repo.root)
    check_amend = os.environ.get("GIT_AUTHOR_DATE", "").startswith("@") and _has_records(sd)
    if not states and not check_amend:
        return "ok", "no pending AI edits"
    head = gitutil.resolve_head(repo)
    sessions: set[str] = set()
    staged = 0
    if states:
        # One `git diff-index` names the staged blobs; fresh blobs are loose and read directly.
        by_path = {state.path: state for state in states}
        raw = gitutil.git(
            repo.root, "diff-index", "--cached", "-r", "--raw", "-z", "--no-renames", head or gitutil.EMPTY_TREE, "--"
        )
        entries = [entry for entry in gitutil.raw_diff(raw) if entry[3] in by_path]
        objects = gitutil.read_objects(repo, [e[1] for e in entries] + [e[2] for e in entries])
        for _status, old, new, path in entries:
            staged += 1
            analysis = analyze(sd, by_path[path], _blob(objects, old), _blob(objects, new))
            sessions.update(session_of(owner) for owner in (*analysis.ai, *analysis.removed))
    if check_amend and head:
        commit = gitutil.read_objects(repo, [head]).get(head)
        if commit is not None and commit[0] == "commit" and _amending(commit[1]):
            # `git commit --amend -m ...` drops the old message: keep the sessions of the commit it replaces.
            record = load_raw_record(sd, head) or {}
            sessions.update(str(x) for x in record.get("session_ids") or [] if valid_id(x))  # type: ignore[attr-defined]
            sessions.update(trailer_session_ids(gitutil.parse_commit(commit[1])[2]))
    if not sessions:
        return "ok", "staged changes carry no AI lines" if staged else "no staged AI edits"
    return add_trailer(repo, msg_path, sessions)


def _blob(objects: dict[str, tuple[str, bytes] | None], oid: str) -> bytes | None:
    found = objects.get(oid)
    return found[1] if found is not None and found[0] == "blob" else None


def _has_records(sd: StateDir) -> bool:
    try:
        with os.scandir(sd.path("commits")) as entries:
            return any(entry.name.endswith(".json") for entry in entries)
    except OSError:
        return False


def _amending(head_commit: bytes) -> bool:
    """`git commit --amend` is running: the author date git exported is HEAD's, and an ancestor
    process is `git commit --amend` (the date alone also matches a commit made in the same second)."""
    for line in head_commit.split(b"\n"):
        if not line:
            return False
        if line.startswith(b"author "):
            fields = line.rsplit(b" ", 2)
            date = f"@{fields[-2].decode(errors='replace')} {fields[-1].decode(errors='replace')}"
            if date != os.environ.get("GIT_AUTHOR_DATE"):
                return False
            break
    pid = os.getppid()
    for _depth in range(4):
        found = _process(pid)
        if found is None:
            return False
        args, pid = found
        if "commit" in args and any(arg.startswith("--amen") for arg in args):
            return True
        if pid <= 1:
            return False
    return False


def _process(pid: int) -> tuple[list[str], int] | None:
    """(command line, parent pid) of a process: /proc on Linux, `ps` elsewhere."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            args = [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        return args, ppid
    except (OSError, ValueError, IndexError):
        pass
    import subprocess

    try:
        out = subprocess.run(
            ["ps", "-o", "ppid=", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout.strip()
        ppid_text, _, command = out.partition(" ")
        return command.split(), int(ppid_text)
    except (OSError, ValueError):
        return None


_TRAILER_LINE = re.compile(r"^[A-Za-z0-9-]+\s*:")
_BLANKISH_LINE = re.compile(r"^[^\S\n]+$", re.MULTILINE)


def _append_trailer(message: str, value: str) -> str | None:
    """`message` with our trailer joined to its trailer block, as git interpret-trailers would write it.

    Returns None for the cases git handles with rules we do not reimplement (comment lines, patch
    dividers, partly-trailer paragraphs); the caller then runs `git interpret-trailers`.
    """
    if "\n#" in "\n" + message or "\n---" in "\n" + message or "\r" in message:
        return None
    if _BLANKISH_LINE.search(message):
        return None  # git takes a whitespace-only line for a blank one: its paragraphs, its rules
    body = message.rstrip("\n")
    paragraphs = body.split("\n\n")
    line = f"{TRAILER_KEY}: {value}"
    last = paragraphs[-1].split("\n")
    # A trailer block: trailer lines and their continuations, so it starts with a trailer line.
    if (
        len(paragraphs) > 1
        and last
        and _TRAILER_LINE.match(last[0])
        and all(_TRAILER_LINE.match(x) or x[:1] in (" ", "\t") for x in last)
    ):
        kept = [x for x in last if not x.lower().startswith(TRAILER_KEY.lower() + ":")]
        if len(kept) != len(last) and any(x[:1] in (" ", "\t") for x in last):
            return None  # a folded value of ours: let git rewrite it
        paragraphs[-1] = "\n".join([*kept, line])
        return "\n\n".join(paragraphs) + "\n"
    if len(paragraphs) > 1 and any(_TRAILER_LINE.match(x) for x in last):
        return None  # a mixed paragraph: git's 25% rule decides
    return body + "\n\n" + line + "\n"


def add_trailer(repo: Repo, msg_path: str, sessions: Iterable[str]) -> tuple[str, str]:
    with open(msg_path, "rb") as handle:
        message = handle.read().decode("utf-8", "surrogateescape")
    if not [line for line in message.splitlines() if line.strip() and not line.startswith("#")]:
        return "skipped", "empty commit message"
    ids = set(sessions)
    for match in _OUR_TRAILER.finditer(message):
        ids.update(part.strip() for part in match.group(1).split(",") if valid_id(part.strip()))
    value = ", ".join(sorted(ids))
    rewritten = _append_trailer(message, value)
    if rewritten is not None:
        atomic_write(msg_path, rewritten.encode("utf-8", "surrogateescape"), 0o644)
        return "ok", f"trailer {value}"
    gitutil.git(
        repo.root,
        "interpret-trailers",
        "--in-place",
        "--if-exists",
        "replace",
        "--trailer",
        f"{TRAILER_KEY}: {value}",
        os.path.abspath(msg_path),
    )
    return "ok", f"trailer {value}"


# -- post-commit --------------------------------------------------------------------------------
def _commit_info(repo: Repo, revs: list[str]) -> dict[str, tuple[list[str], int, str]]:
    out = gitutil.git(repo.root, "log", "--no-walk=unsorted", "--format=%H%x00%P%x00%ct%x00%B%x1e", *revs, "--")
    info: dict[str, tuple[list[str], int, str]] = {}
    for raw_chunk in out.decode("utf-8", "surrogateescape").split("\x1e"):
        chunk = raw_chunk.lstrip("\n")
        if not chunk:
            continue
        sha, parents, ctime, body = chunk.split("\x00", 3)
        info[sha] = (parents.split(), int(ctime or 0), body)
    return info


def post_commit(repo: Repo, sd: StateDir) -> tuple[str, str]:
    if _in_rebase(repo):
        return "skipped", "rebase in progress (post-rewrite carries records)"
    states = worktree_states(sd, repo.root)
    sha = gitutil.resolve_head(repo)
    head = gitutil.read_objects(repo, [sha]).get(sha) if sha else None
    if sha is None or head is None or head[0] != "commit":
        return "skipped", "no HEAD commit"
    parents, ctime, message = gitutil.parse_commit(head[1])
    if len(parents) > 1:
        return "skipped", "merge commit"
    trailer_ids = trailer_session_ids(message)
    if not states and not trailer_ids:
        return "ok", "no AI edits"
    files: list[dict[str, object]] = []
    if states:
        # One `git diff-tree` names the blobs; a fresh commit's blobs are loose and read directly.
        by_path = {state.path: state for state in states}
        tree_args = [parents[0], sha] if parents else ["--root", sha]
        raw = gitutil.git(repo.root, "diff-tree", "-r", "--raw", "-z", "--no-renames", "--no-commit-id", *tree_args)
        entries = [entry for entry in gitutil.raw_diff(raw) if entry[3] in by_path]
        objects = gitutil.read_objects(repo, [e[1] for e in entries] + [e[2] for e in entries])
        for status, old, new, path in entries:
            state = by_path[path]
            committed = _blob(objects, new)
            analysis = analyze(sd, state, _blob(objects, old), committed)
            if analysis.ai or analysis.removed:
                files.append(file_entry(path, status if status in "AMD" else "M", analysis))
            if any(state.removed.values()):
                _consume(sd, repo, path, analysis, committed)
    write_record(sd, sha, parents=parents, ctime=ctime, files=files, trailer_ids=trailer_ids, rewritten_from=[])
    gc(sd)
    ids = sorted({sid for entry in files for sid in entry["sessions"]})  # type: ignore[attr-defined]
    return "ok", f"{sha[:12]} {len(files)} AI file(s) sessions={','.join(ids) or '-'}"


def _consume(sd: StateDir, repo: Repo, path: str, analysis: FileAnalysis, committed: bytes | None) -> None:
    """Drop the removals a commit accounted for (all of them once the work tree matches the commit)."""
    state = FileState(repo.root, path)
    with state.lock(sd):
        state = FileState.load(sd, repo.root, path)
        if state.sha == content_sha(committed):
            state.removed = {}
        else:
            for owner, keys in analysis.consumed.items():
                pool = state.removed.get(owner, [])
                for key in keys:
                    if key in pool:
                        pool.remove(key)
        state.save(sd)


def write_record(
    sd: StateDir,
    sha: str,
    *,
    parents: list[str],
    ctime: int,
    files: list[dict[str, object]],
    trailer_ids: list[str],
    rewritten_from: list[str],
) -> None:
    sessions = sorted({sid for entry in files for sid in entry["sessions"]})  # type: ignore[attr-defined]
    if not files and not trailer_ids and not rewritten_from:
        return
    sd.ensure("commits")
    sd.write_json(
        f"commits/{sha}.json",
        {
            "v": 1,
            "sha": sha,
            "parents": parents,
            "committed_at": ctime,
            "recorded_at": now_iso(),
            "session_ids": sessions,
            "trailer_session_ids": trailer_ids,
            "rewritten_from": rewritten_from,
            "files": sorted(files, key=lambda entry: str(entry["path"])),
        },
    )


GC_MIN_BLOBS = 256


def gc(sd: StateDir, force: bool = False) -> None:
    """Forget stale snapshots (a tool call whose post hook never came) and unreferenced blobs.

    Runs when the blob store has grown past GC_MIN_BLOBS (commits stay cheap the rest of the time).
    """
    try:
        if not force and len(os.listdir(sd.path("blobs"))) < GC_MIN_BLOBS:
            return
    except FileNotFoundError:
        return
    now = time.time()
    referenced: set[str] = set()
    for sub in ("snapshots", "files"):
        try:
            names = os.listdir(sd.path(sub))
        except FileNotFoundError:
            continue
        for name in names:
            full = sd.path(sub, name)
            if not name.endswith(".json"):
                continue
            max_age = SNAPSHOT_MAX_AGE_S if sub == "snapshots" else STATE_MAX_AGE_S
            try:
                if now - os.stat(full).st_mtime > max_age:
                    os.unlink(full)
                    continue
            except OSError:
                continue
            raw = sd.read_json(os.path.join(sub, name))
            if isinstance(raw, dict):
                if isinstance(raw.get("sha"), str):
                    referenced.add(raw["sha"])
                entries = raw.get("entries")
                if isinstance(entries, dict):
                    referenced.update(str(e[3]) for e in entries.values() if isinstance(e, list) and len(e) == 4)
    try:
        blobs = os.listdir(sd.path("blobs"))
    except FileNotFoundError:
        return
    for name in blobs:
        if name not in referenced and not name.startswith("."):
            with contextlib.suppress(OSError):
                os.unlink(sd.path("blobs", name))


# -- post-rewrite -------------------------------------------------------------------------------
def load_raw_record(sd: StateDir, sha: str) -> dict[str, object] | None:
    if not re.fullmatch(r"[0-9a-f]{40,64}", sha):
        return None
    raw = sd.read_json(f"commits/{sha}.json")
    return raw if isinstance(raw, dict) else None


def _line_owners(entry: dict[str, object]) -> dict[int, str]:
    owners: dict[int, str] = {}
    sessions = entry.get("sessions")
    if not isinstance(sessions, dict):
        return owners
    for sid, data in sessions.items():
        if not isinstance(data, dict):
            continue
        for number in L.from_ranges(data.get("ranges") or []):
            owners[number] = sid
        agents = data.get("agents")
        if isinstance(agents, dict):
            for agent, ranges in agents.items():
                for number in L.from_ranges(ranges or []):
                    owners[number] = f"{sid}/{agent}"
    return owners


def post_rewrite(repo: Repo, sd: StateDir, kind: str, stdin: bytes) -> tuple[str, str]:
    groups: dict[str, list[str]] = {}
    for line in stdin.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and all(re.fullmatch(r"[0-9a-f]{40,64}", p) for p in parts[:2]):
            groups.setdefault(parts[1], []).append(parts[0])
    carried = 0
    olds_with_records = {old: load_raw_record(sd, old) for olds in groups.values() for old in olds}
    wanted = [new for new, olds in groups.items() if any(olds_with_records.get(old) for old in olds)]
    if not wanted:
        return "ok", f"{kind}: {len(groups)} commit(s), none recorded"
    info = _commit_info(repo, wanted)
    for new in wanted:
        olds = groups[new]
        parents, ctime, message = info.get(new, ([], 0, ""))
        carry_records(
            repo,
            sd,
            new,
            parents=parents,
            ctime=ctime,
            message=message,
            olds=olds,
            old_records=olds_with_records,
        )
        carried += 1
    return "ok", f"{kind}: carried {carried} record(s)"


def carry_records(  # noqa: PLR0912 - one pass over files, owners and removals reads best in one place
    repo: Repo,
    sd: StateDir,
    new: str,
    *,
    parents: list[str],
    ctime: int,
    message: str,
    olds: list[str],
    old_records: dict[str, dict[str, object] | None],
) -> None:
    """Map the AI lines of `olds` onto commit `new` (amend, rebase pick, reorder, squash)."""
    parent = parents[0] if parents else None
    existing = load_raw_record(sd, new)
    entries_by_path: dict[str, list[tuple[str, dict[str, object]]]] = {}
    for old in olds:
        record = old_records[old] or {}
        for entry in record.get("files") or []:  # type: ignore[attr-defined]
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                entries_by_path.setdefault(entry["path"], []).append((old, entry))
    if existing:
        for entry in existing.get("files") or []:  # type: ignore[attr-defined]
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                entries_by_path.setdefault(entry["path"], []).append((new, entry))
    specs: list[str] = []
    for path, items in entries_by_path.items():
        specs.append(f"{new}:{path}")
        if parent:
            specs.append(f"{parent}:{path}")
        specs.extend(f"{sha}:{path}" for sha, _e in items)
    blobs = gitutil.cat_blobs(repo.root, specs)
    files: list[dict[str, object]] = []
    for path, items in sorted(entries_by_path.items()):
        new_data = blobs.get(f"{new}:{path}")
        base = blobs.get(f"{parent}:{path}") if parent else None
        new_lines = L.split_lines(new_data or b"")
        mapping = L.match(L.split_lines(base or b""), new_lines)
        added = {j + 1 for j, i in enumerate(mapping) if i < 0}
        owners: dict[int, str] = {}
        removed: dict[str, int] = {}
        for sha, entry in items:  # in rewrite order; the fresh record (amend) last, so it wins
            old_lines = L.split_lines(blobs.get(f"{sha}:{path}") or b"")
            old_owner = _line_owners(entry)
            for j, i in enumerate(L.match(old_lines, new_lines)):
                if i >= 0 and (i + 1) in old_owner:
                    owners[j + 1] = old_owner[i + 1]
            sessions = entry.get("sessions")
            if isinstance(sessions, dict):
                for sid, data in sessions.items():
                    if isinstance(data, dict) and isinstance(data.get("removed"), int):
                        removed[sid] = max(removed.get(sid, 0), data["removed"])
        analysis = FileAnalysis()
        analysis.added = len(added)
        kept_base = set(mapping)
        analysis.removed_total = sum(1 for i in range(len(L.split_lines(base or b""))) if i not in kept_base)
        for number in sorted(added):
            if number in owners:
                analysis.ai.setdefault(owners[number], []).append(number)
        budget = analysis.removed_total
        for sid, count in sorted(removed.items()):
            take = min(count, budget)
            if take:
                analysis.removed[sid] = take
                budget -= take
        if new_data is None and not analysis.removed:
            continue
        if analysis.ai or analysis.removed:
            status = "A" if base is None else ("D" if new_data is None else "M")
            files.append(file_entry(path, status, analysis))
    rewritten = list(dict.fromkeys([*olds, *((existing or {}).get("rewritten_from") or [])]))  # type: ignore[misc]
    write_record(
        sd,
        new,
        parents=parents,
        ctime=ctime,
        files=files,
        trailer_ids=trailer_session_ids(message),
        rewritten_from=[str(x) for x in rewritten],
    )


# -- pre-push -----------------------------------------------------------------------------------
def parse_push_refs(stdin: bytes) -> list[tuple[str, str, str, str]]:
    refs: list[tuple[str, str, str, str]] = []
    for line in stdin.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) == 4:
            refs.append((parts[0], parts[1], parts[2], parts[3]))
    return refs


def pushed_commits(repo: Repo, remote: str, refs: list[tuple[str, str, str, str]]) -> dict[str, str]:
    """sha -> message of every commit the push sends (not already on the remote)."""
    include = [local_sha for _lr, local_sha, _rr, _rs in refs if local_sha.strip("0")]
    if not include:
        return {}
    exclude: list[str] = []
    for _lr, _ls, _rr, remote_sha in refs:
        if remote_sha.strip("0"):
            probe = gitutil.git(repo.root, "rev-parse", "-q", "--verify", f"{remote_sha}^{{commit}}", check=False)
            if probe.strip():
                exclude.append("^" + remote_sha)
    if not exclude and remote and not remote.startswith("-"):
        exclude.append(f"--remotes={remote}")
    out = gitutil.git(repo.root, "log", "--format=%H%x00%B%x1e", *include, *exclude, "--", check=False)
    commits: dict[str, str] = {}
    for raw_chunk in out.decode("utf-8", "surrogateescape").split("\x1e"):
        chunk = raw_chunk.lstrip("\n")
        if "\x00" in chunk:
            sha, body = chunk.split("\x00", 1)
            commits[sha] = body
    return commits


def pre_push(repo: Repo, sd: StateDir, remote: str, url: str, stdin: bytes) -> tuple[int, str, str]:
    refs = parse_push_refs(stdin)
    spool = sd.path("spool")
    has_spool = os.path.isdir(spool) and any(name.endswith(".json") for name in os.listdir(spool))
    has_records = os.path.isdir(sd.path("commits")) and bool(os.listdir(sd.path("commits")))
    if not has_records and not has_spool:
        return 0, "ok", "no recorded sessions"
    traced = {
        sha: ids for sha, body in pushed_commits(repo, remote, refs).items() if (ids := trailer_session_ids(body))
    }
    if not traced and not has_spool:
        return 0, "ok", "no pushed commit carries a Tracemark-Sessions trailer"
    try:
        from tracemark import push  # type: ignore[attr-defined, unused-ignore]
    except ImportError:
        return 0, "skipped", f"{len(traced)} traced commit(s); tracemark.push is not available"
    from tracemark.capture.records import PushRef

    push_refs = [PushRef(*ref) for ref in refs]
    code = int(push.run_pre_push(repo.root, remote, url, push_refs))
    return code, "ok" if code == 0 else f"exit {code}", f"{len(traced)} traced commit(s)"
