"""`.tracemark.yml` (or `.tracemark.yaml`; `.yml` wins when both exist), SPEC §2.1.

Keys: `projectName` (required), `organization`, `requireTrace` (default false), `projectVersion`,
`server`, `uploadTranscript` (default true). Reading uses PyYAML's safe loader; `update_config`
rewrites with ruamel.yaml's round-trip mode so comments and key order survive (imported there only).
"""
# os.path throughout, like the capture modules it drives
# ruff: noqa: PTH113, PTH118, PTH120, PTH123

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

from tracemark.errors import UserError

CONFIG_NAMES = (".tracemark.yml", ".tracemark.yaml")
KEYS = ("projectName", "organization", "projectVersion", "requireTrace", "server", "uploadTranscript")


@dataclass(frozen=True)
class ProjectConfig:
    path: str
    project_name: str
    organization: str | None = None
    project_version: str | None = None
    require_trace: bool = False
    server: str | None = None
    upload_transcript: bool = True


def config_path(root: str) -> str | None:
    """The config file of the work tree at `root` (`.yml` first), or None."""
    for name in CONFIG_NAMES:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    return None


def find_config(start: str, root: str | None = None) -> str | None:
    """Walk from `start` up to `root` (inclusive) looking for a config file."""
    current = os.path.realpath(start)
    stop = os.path.realpath(root) if root else None
    while True:
        found = config_path(current)
        if found or current == stop:
            return found
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _optional_str(raw: dict[str, Any], key: str, path: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UserError(f"{path}: {key} must be a string")
    return str(value)


def _bool(raw: dict[str, Any], key: str, default: bool, path: str) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise UserError(f"{path}: {key} must be true or false")
    return value


def load_config(root: str) -> ProjectConfig | None:
    """The project config at the work tree root, None when there is none; UserError when invalid."""
    path = config_path(root)
    if path is None:
        return None
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read {path}: {exc}", "fix the YAML and try again") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{path} must hold a mapping of keys", "e.g. `projectName: my-project`")
    name = _optional_str(raw, "projectName", path)
    if not name:
        raise UserError(f"{path}: projectName is required", "run `tracemark init --project NAME`")
    return ProjectConfig(
        path=path,
        project_name=name,
        organization=_optional_str(raw, "organization", path),
        project_version=_optional_str(raw, "projectVersion", path),
        require_trace=_bool(raw, "requireTrace", False, path),
        server=_optional_str(raw, "server", path),
        upload_transcript=_bool(raw, "uploadTranscript", True, path),
    )


def render_config(root: str, updates: dict[str, Any]) -> tuple[str, bytes | None, bytes]:
    """(path, current bytes or None, new bytes) for the config with `updates` applied.

    An existing file is edited in place (comments, order and other keys kept); None values in
    `updates` leave the key as it is. Raises UserError when the existing file is not valid YAML.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    path = config_path(root) or os.path.join(root, CONFIG_NAMES[0])
    try:
        with open(path, "rb") as handle:
            current: bytes | None = handle.read()
    except FileNotFoundError:
        current = None
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    if current is not None and current.strip():
        try:
            data = yaml.load(current.decode("utf-8"))
        except (YAMLError, UnicodeDecodeError) as exc:
            raise UserError(
                f"{path} is not valid YAML: {exc}", "fix it and run init again; nothing was changed"
            ) from exc
        if not hasattr(data, "items"):
            raise UserError(f"{path} must hold a mapping of keys", "fix it and run init again; nothing was changed")
    else:
        from ruamel.yaml.comments import CommentedMap

        data = CommentedMap()
    changed = current is None
    for key, value in updates.items():
        if value is None:
            continue
        if key not in data or data[key] != value:
            data[key] = value
            changed = True
    if not changed:
        return path, current, current or b""
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return path, current, buffer.getvalue().encode("utf-8")
