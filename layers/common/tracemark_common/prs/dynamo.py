"""`GitHubStore` on the DynamoDB application table (server-only).

Uses the table's generic item model (`store.dynamo.item_model`): keys, an entity name, a
`version` for conditional writes, the record as a JSON `doc`. Item layout (docs/architecture.md):

| pk | sk | gsi1pk / gsi1sk | entity |
|---|---|---|---|
| `INSTALLATION#<id>` | `INSTALLATION` | `INSTALLATIONS` / `<id, 20 digits>` | installation |
| `REPO#<id>` | `REPO` | `INSTALLATION#<id>#REPOS` / `<full name>` | repository |
| `PR#<repo id>#<number>` | `PR` | – | pull_request |
| `DELIVERY#<delivery id>` | `DELIVERY` | – (TTL 30 days) | delivery |
| `SESSIONPRS#<org>#<session id>` | `PR#<repo id>#<number>` | – | session_pull |
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from pynamodb.exceptions import PutError

from tracemark_common.prs.records import (
    DeliveryRecord,
    InstallationRecord,
    PullRequestState,
    RepositoryRecord,
)
from tracemark_common.store.dynamo import AppItem, item_model

R = TypeVar("R")
_MAX_ATTEMPTS = 25
DELIVERY_TTL_SECONDS = 30 * 86400


class ConcurrentUpdate(Exception):
    """An item kept changing under a conditional update; the caller may retry."""


def _dump(record: Any) -> str:
    data = dataclasses.asdict(record)
    data.pop("version", None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _load(cls: type[R], item: AppItem) -> R:
    data = json.loads(item.doc or "{}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    record = cls(**{k: v for k, v in data.items() if k in names})
    if "version" in names:
        record.version = int(item.version)  # type: ignore[attr-defined]
    return record


def _conditional_failed(exc: PutError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


class DynamoGitHubStore:
    def __init__(self, table_name: str, region: str | None = None, host: str | None = None) -> None:
        region = region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
        host = host if host is not None else os.environ.get("AWS_ENDPOINT_URL") or None
        self.Item = item_model(table_name, region, host)

    def _get(self, pk: str, sk: str) -> AppItem | None:
        try:
            return self.Item.get(pk, sk, consistent_read=True)
        except self.Item.DoesNotExist:
            return None

    def _update(
        self,
        pk: str,
        sk: str,
        cls: type[R],
        change: Callable[[R], None],
        *,
        create: Callable[[], R] | None = None,
        decorate: Callable[[AppItem, R], None] | None = None,
        entity: str = "",
    ) -> R | None:
        for attempt in range(_MAX_ATTEMPTS):
            item = self._get(pk, sk)
            if item is None:
                if create is None:
                    return None
                record = create()
                item = self.Item(pk, sk, entity=entity, version=0)
                condition: Any = self.Item.pk.does_not_exist()
            else:
                record = _load(cls, item)
                condition = self.Item.version == item.version
            change(record)
            item.version = int(item.version or 0) + 1
            if hasattr(record, "version"):
                record.version = item.version
            item.doc = _dump(record)
            if decorate is not None:
                decorate(item, record)
            try:
                item.save(condition=condition)
            except PutError as exc:
                if _conditional_failed(exc):
                    time.sleep(random.uniform(0, 0.02 * (attempt + 1)))  # noqa: S311 - jitter, not crypto
                    continue
                raise
            return record
        raise ConcurrentUpdate(f"{pk} kept changing; try again")

    # installations --------------------------------------------------------------------------
    @staticmethod
    def _installation_keys(item: AppItem, record: InstallationRecord) -> None:
        item.gsi1pk = "INSTALLATIONS"
        item.gsi1sk = f"{record.id:020d}"

    def get_installation(self, installation_id: int) -> InstallationRecord | None:
        item = self._get(f"INSTALLATION#{installation_id}", "INSTALLATION")
        return None if item is None else _load(InstallationRecord, item)

    def put_installation(self, record: InstallationRecord) -> None:
        def replace(current: InstallationRecord) -> None:
            for f in dataclasses.fields(record):
                setattr(current, f.name, getattr(record, f.name))

        self._update(
            f"INSTALLATION#{record.id}",
            "INSTALLATION",
            InstallationRecord,
            replace,
            create=lambda: dataclasses.replace(record),
            decorate=self._installation_keys,
            entity="installation",
        )

    def update_installation(
        self, installation_id: int, change: Callable[[InstallationRecord], None]
    ) -> InstallationRecord | None:
        return self._update(
            f"INSTALLATION#{installation_id}",
            "INSTALLATION",
            InstallationRecord,
            change,
            decorate=self._installation_keys,
        )

    def list_installations(self) -> list[InstallationRecord]:
        return [_load(InstallationRecord, item) for item in self.Item.gsi1.query("INSTALLATIONS")]

    # repositories ---------------------------------------------------------------------------
    @staticmethod
    def _repository_keys(item: AppItem, record: RepositoryRecord) -> None:
        item.gsi1pk = f"INSTALLATION#{record.installation_id}#REPOS"
        item.gsi1sk = record.full_name
        item.project = record.project

    def get_repository(self, repository_id: int) -> RepositoryRecord | None:
        item = self._get(f"REPO#{repository_id}", "REPO")
        return None if item is None else _load(RepositoryRecord, item)

    def put_repository(self, record: RepositoryRecord) -> None:
        def replace(current: RepositoryRecord) -> None:
            for f in dataclasses.fields(record):
                setattr(current, f.name, getattr(record, f.name))

        self._update(
            f"REPO#{record.id}",
            "REPO",
            RepositoryRecord,
            replace,
            create=lambda: dataclasses.replace(record),
            decorate=self._repository_keys,
            entity="repository",
        )

    def update_repository(
        self, repository_id: int, change: Callable[[RepositoryRecord], None]
    ) -> RepositoryRecord | None:
        return self._update(f"REPO#{repository_id}", "REPO", RepositoryRecord, change, decorate=self._repository_keys)

    def repositories_of(self, installation_id: int) -> list[RepositoryRecord]:
        items = self.Item.gsi1.query(f"INSTALLATION#{installation_id}#REPOS")
        # The index is eventually consistent: read each repository again for its current state.
        found = [self.get_repository(_load(RepositoryRecord, item).id) for item in items]
        return [r for r in found if r is not None and r.installation_id == installation_id]

    # deliveries -------------------------------------------------------------------------------
    def record_delivery(self, record: DeliveryRecord) -> bool:
        item = self.Item(f"DELIVERY#{record.id}", "DELIVERY", entity="delivery", doc=_dump(record))
        item.expires_at = timedelta(seconds=DELIVERY_TTL_SECONDS)  # pynamodb: relative to now
        try:
            item.save(condition=self.Item.pk.does_not_exist())
        except PutError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    # pull requests ----------------------------------------------------------------------------
    def get_pull(self, repository_id: int, number: int) -> PullRequestState | None:
        item = self._get(f"PR#{repository_id}#{number}", "PR")
        return None if item is None else _load(PullRequestState, item)

    def update_pull(
        self, repository_id: int, number: int, change: Callable[[PullRequestState], None]
    ) -> PullRequestState:
        record = self._update(
            f"PR#{repository_id}#{number}",
            "PR",
            PullRequestState,
            change,
            create=lambda: PullRequestState(repository_id, number),
            entity="pull_request",
        )
        assert record is not None
        return record

    def link_session_pull(self, org: str, session_id: str, repository_id: int, number: int) -> None:
        self.Item(f"SESSIONPRS#{org}#{session_id}", f"PR#{repository_id}#{number}", entity="session_pull").save()

    def pulls_for_session(self, org: str, session_id: str) -> list[tuple[int, int]]:
        items = self.Item.query(f"SESSIONPRS#{org}#{session_id}", self.Item.sk.startswith("PR#"), consistent_read=True)
        pulls = []
        for item in items:
            _, repo, number = item.sk.split("#")
            pulls.append((int(repo), int(number)))
        return sorted(pulls)
