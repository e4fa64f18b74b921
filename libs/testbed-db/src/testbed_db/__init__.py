"""The testbed's database schema, owned in one place and shared by every service."""

from testbed_db.engine import make_engine
from testbed_db.models import (
    DISPATCHER_FLAG_ACTIVE,
    DISPATCHER_FLAG_INACTIVE,
    PROXY_SET_ID,
    Base,
    Dispatcher,
    ProxyRecord,
    ProxyState,
    Subscriber,
    Version,
)
from testbed_db.schema import (
    KAMAILIO_TABLE_VERSIONS,
    SubscriberSeed,
    create_schema,
    seed_subscribers,
)

__all__ = [
    "DISPATCHER_FLAG_ACTIVE",
    "DISPATCHER_FLAG_INACTIVE",
    "KAMAILIO_TABLE_VERSIONS",
    "PROXY_SET_ID",
    "Base",
    "Dispatcher",
    "ProxyRecord",
    "ProxyState",
    "Subscriber",
    "SubscriberSeed",
    "Version",
    "create_schema",
    "make_engine",
    "seed_subscribers",
]
