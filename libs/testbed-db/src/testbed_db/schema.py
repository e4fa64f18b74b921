"""Create the schema and seed subscribers, idempotently (every controller start runs this)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from testbed_db.models import Base, Subscriber, Version

# table_version values Kamailio 5.6 modules check (from /usr/share/kamailio/*/...-create.sql)
KAMAILIO_TABLE_VERSIONS: dict[str, int] = {
    "version": 1,
    "subscriber": 7,
    "dispatcher": 4,
}

_BATCH = 2000


def create_schema(engine: Engine) -> None:
    """Create missing tables and make the `version` rows say what Kamailio expects."""
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        existing = {v.table_name: v for v in session.scalars(select(Version))}
        for table, version in KAMAILIO_TABLE_VERSIONS.items():
            row = existing.get(table)
            if row is None:
                session.add(Version(table_name=table, table_version=version))
            elif row.table_version != version:
                row.table_version = version


@dataclass(frozen=True)
class SubscriberSeed:
    """Users `first`..`last` as zero-padded IDs of `width` digits, password from a template.

    The template is a str.format pattern with {username} and {domain}; the default makes the
    password equal to the user name, as the paper's clients assume.
    """

    domain: str
    first: int = 0
    last: int = 9999
    width: int = 4
    password_template: str = "{username}"

    def __post_init__(self) -> None:
        if self.first < 0 or self.last < self.first:
            raise ValueError(f"subscriber range {self.first}..{self.last} is empty or negative")
        if len(str(self.last)) > self.width:
            raise ValueError(f"subscriber {self.last} does not fit in {self.width} digits")
        try:
            self.password_template.format(username="0000", domain=self.domain)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"subscriber password template '{self.password_template}' is invalid: "
                "only {username} and {domain} may be used"
            ) from exc

    def usernames(self) -> Iterator[str]:
        for n in range(self.first, self.last + 1):
            yield str(n).zfill(self.width)

    def password(self, username: str) -> str:
        return self.password_template.format(username=username, domain=self.domain)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def seed_subscribers(engine: Engine, seed: SubscriberSeed) -> int:
    """Insert the missing subscribers and fix changed passwords; returns rows written."""
    written = 0
    with Session(engine) as session, session.begin():
        current = {
            s.username: s
            for s in session.scalars(select(Subscriber).where(Subscriber.domain == seed.domain))
        }
        batch: list[Subscriber] = []
        for username in seed.usernames():
            password = seed.password(username)
            row = current.get(username)
            if row is not None:
                if row.password != password:
                    row.password = password
                    row.ha1 = _md5(f"{username}:{seed.domain}:{password}")
                    row.ha1b = _md5(f"{username}@{seed.domain}:{seed.domain}:{password}")
                    written += 1
                continue
            batch.append(
                Subscriber(
                    username=username,
                    domain=seed.domain,
                    password=password,
                    ha1=_md5(f"{username}:{seed.domain}:{password}"),
                    ha1b=_md5(f"{username}@{seed.domain}:{seed.domain}:{password}"),
                )
            )
            if len(batch) >= _BATCH:
                session.add_all(batch)
                session.flush()
                written += len(batch)
                batch = []
        session.add_all(batch)
        written += len(batch)
    return written
