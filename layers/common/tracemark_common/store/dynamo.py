"""`AppStore` on the DynamoDB application table (pynamodb), server-only.

One generic pynamodb model, `AppItem`, maps every typed item of the single table: the keys
(`pk`/`sk`, the two overloaded GSIs), an `entity` name, a `version` for optimistic concurrency,
the record as a JSON `doc`, a few top-level attributes used in filters, and the TTL. The layout
of every entity is in docs/architecture.md ("Backend core: item layout").

The model class is built by a cached factory, so `Meta.table_name` comes from settings at run
time, never at import time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, PutError, TransactWriteError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from tracemark_common.store.base import (
    AlreadyExists,
    AlreadyIngested,
    SessionCommit,
    SessionQuery,
    StaleSession,
)
from tracemark_common.store.memory import decode_cursor, encode_cursor
from tracemark_common.store.records import (
    AttestationRecord,
    AuditRecord,
    KeyRecord,
    OrgRecord,
    PolicyRecord,
    ProjectRecord,
    SessionRecord,
    TokenRecord,
)

R = TypeVar("R")
_MAX_UPDATE_ATTEMPTS = 8


class _Gsi1(GlobalSecondaryIndex["AppItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class _Gsi2(GlobalSecondaryIndex["AppItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "gsi2"
        projection = AllProjection()

    gsi2pk = UnicodeAttribute(hash_key=True)
    gsi2sk = UnicodeAttribute(range_key=True)


class AppItem(Model):
    """Attributes shared by every item of the application table (no Meta: see `item_model`)."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi2pk = UnicodeAttribute(null=True)
    gsi2sk = UnicodeAttribute(null=True)
    entity = UnicodeAttribute()
    version = NumberAttribute(default=0)
    doc = UnicodeAttribute(null=True)  # the record as JSON
    project = UnicodeAttribute(null=True)  # sessions: filter on lists
    subject = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True)
    gsi1 = _Gsi1()
    gsi2 = _Gsi2()


@lru_cache(maxsize=16)
def item_model(table_name: str, region: str, host: str | None) -> type[AppItem]:
    """The `AppItem` model bound to one table (cached: one class, one connection per table)."""
    meta_attrs: dict[str, Any] = {"table_name": table_name, "region": region}
    if host:
        meta_attrs["host"] = host
    meta = type("Meta", (), meta_attrs)
    return type(f"AppItem_{table_name}", (AppItem,), {"Meta": meta, "__module__": __name__})


# keys -----------------------------------------------------------------------------------------
def org_pk(org: str) -> str:
    return f"ORG#{org}"


def session_pk(org: str, session_id: str) -> str:
    return f"ORG#{org}#SESSION#{session_id}"


def attestation_pk(org: str, digest: str) -> str:
    return f"ORG#{org}#ATT#{digest}"


def commit_pk(org: str, sha: str) -> str:
    return f"ORG#{org}#COMMIT#{sha}"


def sessions_gsi1pk(org: str) -> str:
    return f"ORG#{org}#SESSIONS"


def user_sessions_gsi2pk(org: str, user: str) -> str:
    return f"ORG#{org}#USER#{user}"


def _dump(record: Any, exclude: tuple[str, ...] = ()) -> str:
    data = dataclasses.asdict(record)
    for name in exclude:
        data.pop(name, None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _load(cls: type[R], doc: str | None) -> R:
    data = json.loads(doc or "{}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


def _attested_with(record: SessionRecord | None, sha: str) -> bool:
    if record is None:
        return False
    return sha in record.commits or any(sha in olds for olds in record.rewritten_from.values())


class DynamoStore:
    def __init__(self, table_name: str, region: str | None = None, host: str | None = None) -> None:
        self.region = region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
        self.host = (host if host is not None else os.environ.get("AWS_ENDPOINT_URL")) or None
        self.table_name = table_name
        self.Item = item_model(table_name, self.region, self.host)

    # helpers ------------------------------------------------------------------------------
    def _connection(self) -> Connection:
        """The model's own connection (one botocore client per table, reused by transactions)."""
        connection: Connection = self.Item._get_connection().connection
        return connection

    def _get(self, pk: str, sk: str) -> AppItem | None:
        try:
            return self.Item.get(pk, sk, consistent_read=True)
        except self.Item.DoesNotExist:
            return None

    def _create(self, item: AppItem) -> None:
        try:
            item.save(condition=self.Item.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise AlreadyExists(item.pk) from exc
            raise

    def _update_doc(self, pk: str, sk: str, cls: type[R], change: Callable[[R], None]) -> R | None:
        """Read-modify-write with a version condition, retried on a concurrent change."""
        for _ in range(_MAX_UPDATE_ATTEMPTS):
            item = self._get(pk, sk)
            if item is None:
                return None
            record = _load(cls, item.doc)
            change(record)
            expected = int(item.version)
            item.doc = _dump(record, exclude=("evidence",))
            item.version = expected + 1
            if isinstance(record, SessionRecord):
                record.version = expected + 1
                self._session_index_attrs(item, record)
                item.doc = _dump(record, exclude=("evidence",))
            try:
                item.save(condition=self.Item.version == expected)
            except PutError as exc:
                if exc.cause_response_code == "ConditionalCheckFailedException":
                    continue
                raise
            return record
        raise StaleSession(f"{pk} kept changing; try again")

    def _query(self, pk: str, prefix: str) -> Iterator[AppItem]:
        return iter(self.Item.query(pk, self.Item.sk.startswith(prefix), consistent_read=True))

    # organisations ------------------------------------------------------------------------
    def create_org(self, org: OrgRecord) -> None:
        self._create(self.Item(org_pk(org.name), "ORG", entity="org", doc=_dump(org)))

    def get_org(self, name: str) -> OrgRecord | None:
        item = self._get(org_pk(name), "ORG")
        return None if item is None else _load(OrgRecord, item.doc)

    def update_org_settings(self, name: str, settings: dict[str, Any]) -> OrgRecord:
        updated = self._update_doc(org_pk(name), "ORG", OrgRecord, lambda org: org.settings.update(settings))
        if updated is None:
            raise KeyError(name)
        return updated

    # projects -----------------------------------------------------------------------------
    def create_project(self, project: ProjectRecord) -> None:
        self._create(self.Item(org_pk(project.org), f"PROJECT#{project.name}", entity="project", doc=_dump(project)))

    def get_project(self, org: str, name: str) -> ProjectRecord | None:
        item = self._get(org_pk(org), f"PROJECT#{name}")
        return None if item is None else _load(ProjectRecord, item.doc)

    def set_project_contract(self, org: str, name: str, yaml_text: str, at: str, by: str) -> ProjectRecord:
        def change(project: ProjectRecord) -> None:
            project.contract_yaml = yaml_text
            project.contract_updated_at = at
            project.contract_updated_by = by

        updated = self._update_doc(org_pk(org), f"PROJECT#{name}", ProjectRecord, change)
        if updated is None:
            raise KeyError(name)
        return updated

    # tokens -------------------------------------------------------------------------------
    def put_token(self, token: TokenRecord) -> None:
        # Kept a day past expiry, then DynamoDB's TTL removes it (the JWT is dead by then anyway).
        item = self.Item(org_pk(token.org), f"TOKEN#{token.id}", entity="token", subject=token.sub, doc=_dump(token))
        item.expires_at = datetime.fromtimestamp(token.expires_at_epoch + 86400, tz=UTC)
        item.save()

    def get_token(self, org: str, token_id: str) -> TokenRecord | None:
        item = self._get(org_pk(org), f"TOKEN#{token_id}")
        return None if item is None else _load(TokenRecord, item.doc)

    def revoke_token(self, org: str, token_id: str, at: str) -> TokenRecord | None:
        def change(token: TokenRecord) -> None:
            if token.revoked_at is None:
                token.revoked_at = at

        return self._update_doc(org_pk(org), f"TOKEN#{token_id}", TokenRecord, change)

    # keys ---------------------------------------------------------------------------------
    def _key_item(self, key: KeyRecord) -> AppItem:
        return self.Item(
            org_pk(key.org),
            f"KEY#{key.keyid}",
            entity="key",
            subject=key.subject,
            gsi1pk=f"ORG#{key.org}#KEYS_BY_SUB#{key.subject}",
            gsi1sk=f"KEY#{key.keyid}",
            gsi2pk=f"ORG#{key.org}#KEYS_BY_TOKEN#{key.token_id}",
            gsi2sk=f"KEY#{key.keyid}",
            doc=_dump(key),
        )

    def create_key(self, key: KeyRecord) -> None:
        self._create(self._key_item(key))

    def get_key(self, org: str, keyid: str) -> KeyRecord | None:
        item = self._get(org_pk(org), f"KEY#{keyid}")
        return None if item is None else _load(KeyRecord, item.doc)

    def keys_for_subject(self, org: str, subject: str) -> list[KeyRecord]:
        items = self.Item.gsi1.query(f"ORG#{org}#KEYS_BY_SUB#{subject}")
        # GSIs are eventually consistent: re-read each key for its current revocation state.
        keys = [self.get_key(org, _load(KeyRecord, item.doc).keyid) for item in items]
        return [k for k in keys if k is not None and k.subject == subject]

    def keys_for_token(self, org: str, token_id: str) -> list[KeyRecord]:
        items = self.Item.gsi2.query(f"ORG#{org}#KEYS_BY_TOKEN#{token_id}")
        keys = [self.get_key(org, _load(KeyRecord, item.doc).keyid) for item in items]
        return [k for k in keys if k is not None and k.token_id == token_id]

    def revoke_key(self, org: str, keyid: str, at: str) -> KeyRecord | None:
        def change(key: KeyRecord) -> None:
            if key.revoked_at is None:
                key.revoked_at = at

        return self._update_doc(org_pk(org), f"KEY#{keyid}", KeyRecord, change)

    # policies and audit -------------------------------------------------------------------
    def put_policy(self, policy: PolicyRecord) -> None:
        self.Item(org_pk(policy.org), f"POLICY#{policy.name}", entity="policy", doc=_dump(policy)).save()

    def get_policy(self, org: str, name: str) -> PolicyRecord | None:
        item = self._get(org_pk(org), f"POLICY#{name}")
        return None if item is None else _load(PolicyRecord, item.doc)

    def list_policies(self, org: str) -> list[PolicyRecord]:
        return [_load(PolicyRecord, item.doc) for item in self._query(org_pk(org), "POLICY#")]

    def audit(self, record: AuditRecord) -> None:
        pk = f"ORG#{record.org}#AUDIT"
        self.Item(pk, f"{record.at}#{uuid.uuid4().hex}", entity="audit", doc=_dump(record)).save()

    # attestations and sessions ------------------------------------------------------------
    def get_attestation(self, org: str, digest: str) -> AttestationRecord | None:
        item = self._get(attestation_pk(org, digest), "ATT")
        return None if item is None else _load(AttestationRecord, item.doc)

    @staticmethod
    def _session_index_attrs(item: AppItem, record: SessionRecord) -> None:
        item.gsi1pk = sessions_gsi1pk(record.org)
        item.gsi1sk = f"{record.at}#{record.id}"
        item.gsi2pk = user_sessions_gsi2pk(record.org, record.user)
        item.gsi2sk = f"{record.at}#{record.id}"
        item.project = record.project
        item.subject = record.user

    def _session_item(self, record: SessionRecord, version: int) -> AppItem:
        record.version = version
        item = self.Item(session_pk(record.org, record.id), "SESSION", entity="session", version=version)
        self._session_index_attrs(item, record)
        item.doc = _dump(record, exclude=("evidence",))
        return item

    def get_session(self, org: str, session_id: str) -> SessionRecord | None:
        item = self._get(session_pk(org, session_id), "SESSION")
        if item is None:
            return None
        record = _load(SessionRecord, item.doc)
        record.version = int(item.version)
        return record

    def put_commit_index(self, org: str, session_id: str, shas: Sequence[str]) -> None:
        with self.Item.batch_write() as batch:
            for sha in dict.fromkeys(shas):
                batch.save(self.Item(commit_pk(org, sha), f"SESSION#{session_id}", entity="commit"))

    def commit_ingest(self, attestation: AttestationRecord, sessions: Sequence[SessionCommit]) -> None:
        connection = self._connection()
        att_item = self.Item(
            attestation_pk(attestation.org, attestation.digest),
            "ATT",
            entity="attestation",
            subject=attestation.sub,
            doc=_dump(attestation),
        )
        try:
            with TransactWrite(connection=connection) as transaction:
                transaction.save(att_item, condition=self.Item.pk.does_not_exist())
                for entry in sessions:
                    expected = entry.expected_version
                    version = 0 if expected is None else expected + 1
                    item = self._session_item(dataclasses.replace(entry.record), version)
                    condition = self.Item.pk.does_not_exist() if expected is None else self.Item.version == expected
                    transaction.save(item, condition=condition)
        except TransactWriteError as exc:
            reasons = [getattr(r, "code", None) for r in exc.cancellation_reasons]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise AlreadyIngested(attestation.digest) from exc
            if "ConditionalCheckFailed" in reasons:
                raise StaleSession(",".join(e.record.id for e in sessions)) from exc
            raise

    def update_session(
        self, org: str, session_id: str, change: Callable[[SessionRecord], None]
    ) -> SessionRecord | None:
        return self._update_doc(session_pk(org, session_id), "SESSION", SessionRecord, change)

    def delete_session(self, record: SessionRecord) -> None:
        connection = self._connection()
        item = self.Item(session_pk(record.org, record.id), "SESSION")
        try:
            with TransactWrite(connection=connection) as transaction:
                transaction.delete(item, condition=self.Item.version == record.version)
                for digest in record.digests[:90]:
                    transaction.delete(self.Item(attestation_pk(record.org, digest), "ATT"))
        except TransactWriteError as exc:
            raise StaleSession(record.id) from exc
        shas = list(record.commits) + [old for olds in record.rewritten_from.values() for old in olds]
        try:
            with self.Item.batch_write() as batch:
                for digest in record.digests[90:]:
                    batch.delete(self.Item(attestation_pk(record.org, digest), "ATT"))
                for sha in dict.fromkeys(shas):
                    batch.delete(self.Item(commit_pk(record.org, sha), f"SESSION#{record.id}"))
        except DeleteError:  # the session is gone; stale index entries are filtered on read
            pass

    def sessions_for_commit(self, org: str, sha: str) -> list[str]:
        # The index is written before the session's transaction (so a stored session is always
        # indexed); an entry whose session does not list the sha is left by a failed or crashed
        # ingest and is ignored here.
        ids = [item.sk.removeprefix("SESSION#") for item in self._query(commit_pk(org, sha), "SESSION#")]
        return sorted(sid for sid in ids if _attested_with(self.get_session(org, sid), sha))

    def list_sessions(self, query: SessionQuery) -> tuple[list[SessionRecord], str | None]:
        lower = query.since or "0"
        upper = query.until or "~"
        start_key: dict[str, dict[str, str]] | None = None
        if query.user:
            index: Any = self.Item.gsi2
            hash_value = user_sessions_gsi2pk(query.org, query.user)
            sort_attr: Any = self.Item.gsi2sk
            names = ("gsi2pk", "gsi2sk")
        else:
            index = self.Item.gsi1
            hash_value = sessions_gsi1pk(query.org)
            sort_attr = self.Item.gsi1sk
            names = ("gsi1pk", "gsi1sk")
        if query.cursor:
            position = decode_cursor(query.cursor, ("at", "id"))
            upper = min(upper, f"{position['at']}#{position['id']}")
            start_key = {
                "pk": {"S": session_pk(query.org, position["id"])},
                "sk": {"S": "SESSION"},
                names[0]: {"S": hash_value},
                names[1]: {"S": f"{position['at']}#{position['id']}"},
            }
        condition = sort_attr.between(lower, upper)
        filter_condition = self.Item.project == query.project if query.project else None
        results = index.query(
            hash_value,
            condition,
            filter_condition=filter_condition,
            scan_index_forward=False,
            last_evaluated_key=start_key,
            page_size=max(query.limit + 1, 25),
        )
        rows: list[SessionRecord] = []
        for item in results:
            record = _load(SessionRecord, item.doc)
            record.version = int(item.version)
            if start_key is not None and f"{record.at}#{record.id}" == start_key[names[1]]["S"]:
                continue
            rows.append(record)
            if len(rows) > query.limit:
                break
        page = rows[: query.limit]
        next_cursor = None
        if len(rows) > query.limit and page:
            next_cursor = encode_cursor({"at": page[-1].at, "id": page[-1].id})
        return page, next_cursor
