"""Header fields: case-insensitive names, compact forms, several values per line or per field."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

# RFC 3261 7.3.3 and the extensions that registered compact forms
COMPACT_FORMS = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

_SPELLING = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
}


_KEYS: dict[str, str] = {}


def header_key(name: str) -> str:
    """The lookup key of a header name: lower case, compact form expanded."""
    key = _KEYS.get(name)
    if key is None:
        lowered = name.lower()
        key = COMPACT_FORMS.get(lowered, lowered)
        if len(_KEYS) < 4096:  # bounded: names come from the network
            _KEYS[name] = key
    return key


_CANONICAL: dict[str, str] = {}


def canonical_name(key: str) -> str:
    """How we write a header we generate: 'call-id' -> 'Call-ID', 'cseq' -> 'CSeq'."""
    name = _CANONICAL.get(key)
    if name is None:
        name = _SPELLING.get(key) or "-".join(part.capitalize() for part in key.split("-"))
        if len(_CANONICAL) < 4096:  # bounded: keys come from the network
            _CANONICAL[key] = name
    return name


class Headers:
    """An immutable, ordered list of header fields with case-insensitive lookup.

    Names are kept as received (for faithful forwarding); lookups use `header_key`.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        keys = _KEYS
        self._fields: tuple[tuple[str, str, str], ...] = tuple(
            [(keys.get(name) or header_key(name), name, value) for name, value in fields]
        )

    @classmethod
    def _from_keyed(cls, fields: tuple[tuple[str, str, str], ...]) -> Headers:
        headers = cls()  # not cls.__new__: a mypyc-compiled class must be built by its __init__
        headers._fields = fields
        return headers

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for _key, name, value in self._fields:
            yield name, value

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def get(self, name: str) -> str | None:
        """The first field of that name, or None."""
        key = _KEYS.get(name) or header_key(name)
        for field in self._fields:
            if field[0] == key:
                return field[2]
        return None

    def get_all(self, name: str) -> list[str]:
        """Every field line of that name, in order (values of one line are not split)."""
        key = header_key(name)
        return [value for field_key, _name, value in self._fields if field_key == key]

    def count(self, name: str) -> int:
        return len(self.get_all(name))

    def keys(self) -> list[str]:
        """The lookup key of every field, in order."""
        return [key for key, _name, _value in self._fields]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def add(self, name: str, value: str) -> Headers:
        return Headers._from_keyed((*self._fields, (header_key(name), name, value)))

    def remove(self, name: str) -> Headers:
        key = header_key(name)
        return Headers._from_keyed(tuple(f for f in self._fields if f[0] != key))

    def replace(self, name: str, value: str) -> Headers:
        """Set one field of that name, at the place of the first one (or at the end)."""
        key = header_key(name)
        out: list[tuple[str, str, str]] = []
        placed = False
        for field in self._fields:
            if field[0] == key:
                if not placed:
                    out.append((key, field[1], value))
                    placed = True
                continue
            out.append(field)
        if not placed:
            out.append((key, name, value))
        return Headers._from_keyed(tuple(out))

    def prepend(self, name: str, value: str) -> Headers:
        return Headers._from_keyed(((header_key(name), name, value), *self._fields))
