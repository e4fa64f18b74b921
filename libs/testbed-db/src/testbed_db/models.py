"""SQLAlchemy models: Kamailio 5.6 tables (as in /usr/share/kamailio/*/) and the testbed's own."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, Enum, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# dispatcher set the load balancer selects from (ds_select_dst("1", "0") in sip-loadb.cfg)
PROXY_SET_ID = 1
# dispatcher `flags` column: 0 = active, 1 = inactive (Kamailio's DS_INACTIVE_DST)
DISPATCHER_FLAG_ACTIVE = 0
DISPATCHER_FLAG_INACTIVE = 1


class Base(DeclarativeBase):
    pass


class Version(Base):
    """Kamailio checks `table_version` of each table it opens and refuses to start on a mismatch."""

    __tablename__ = "version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_name: Mapped[str] = mapped_column(String(32), nullable=False)
    table_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    __table_args__ = (UniqueConstraint("table_name", name="version_table_name_idx"),)


class Subscriber(Base):
    """auth_db credentials; the proxies compute HA1 from `password` (calculate_ha1=yes)."""

    __tablename__ = "subscriber"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    domain: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    password: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    ha1: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    ha1b: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    __table_args__ = (
        UniqueConstraint("username", "domain", name="subscriber_account_idx"),
        Index("subscriber_username_idx", "username"),
    )


class Dispatcher(Base):
    """The load balancer's destinations; only proxies that serve (or drain) have a row."""

    __tablename__ = "dispatcher"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    setid: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    destination: Mapped[str] = mapped_column(String(192), nullable=False, default="")
    flags: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attrs: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    description: Mapped[str] = mapped_column(String(64), nullable=False, default="")


class ProxyState(enum.StrEnum):
    ENABLED = "enabled"  # in the dispatcher set, active
    DRAINING = "draining"  # in the set but inactive, waiting for open transactions to end
    DISABLED = "disabled"  # removed by an operator or a preStop hook
    UNHEALTHY = "unhealthy"  # taken out by the reconciler; comes back when healthy


class ProxyRecord(Base):
    """The testbed's own view of a proxy: where it is and what state the controller put it in."""

    __tablename__ = "testbed_proxy"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    sip_uri: Mapped[str] = mapped_column(String(192), nullable=False)
    http_url: Mapped[str] = mapped_column(String(192), nullable=False)
    state: Mapped[ProxyState] = mapped_column(
        Enum(
            ProxyState, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
        ),
        nullable=False,
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime, nullable=False, server_default=func.now(), onupdate=func.now()
    )
