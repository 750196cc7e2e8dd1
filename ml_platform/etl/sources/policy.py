"""Where a saved connection may go, and with which driver options.

A connection is untrusted input: a user types the host, the path and the options, and
the server then opens a socket or a file in its own name. This module is the one place
that decides whether it may. It knows nothing of Django: the web layer builds a
`SourcePolicy` from settings and calls `enforce()` before any source call (and the
connection form calls it to show field errors).

What it guarantees:
- driver options are an allow-list per engine, each value type-checked and bounded;
  certificate files are named relative to a configured directory;
- SQLite files only below `sqlite_root` (checked on the resolved real path, so `..` and
  symlinks cannot leave it), never the product's own data directory, never anything
  but a regular file;
- no Unix sockets unless configured; hosts checked against an optional allow/deny list
  on every address they resolve to; never the product's own database.

The safety settings that no option may override (no LOCAL INFILE, read-only sessions,
bounded timeouts, no cleartext password auth, no ~/.pgpass) are applied by
`etl.sources.engines.connect_args`, after the options.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "CONNECT_TIMEOUT_CEILING_S",
    "OPTION_SPECS",
    "READ_TIMEOUT_CEILING_S",
    "HostRule",
    "PolicyViolation",
    "SourcePolicy",
    "enforce",
    "parse_host_rules",
]

CONNECT_TIMEOUT_CEILING_S = 10
READ_TIMEOUT_CEILING_S = 60

Resolver = Callable[[str, int], list[str]]


class PolicyViolation(ValueError):
    """A connection field the server refuses to use; `field` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- driver options ----------------------------------------------------------------


@dataclass(frozen=True)
class OptionSpec:
    kind: str  # choice | bool | int | name | certificate
    choices: tuple[str, ...] = ()
    low: int = 1
    high: int = 0


_TIMEOUT = OptionSpec("int", high=CONNECT_TIMEOUT_CEILING_S)
OPTION_SPECS: dict[str, dict[str, OptionSpec]] = {
    "postgresql": {
        "sslmode": OptionSpec("choice", ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")),
        "sslrootcert": OptionSpec("certificate"),
        "sslcert": OptionSpec("certificate"),
        "sslkey": OptionSpec("certificate"),
        "application_name": OptionSpec("name"),
        "connect_timeout": _TIMEOUT,
    },
    "mysql": {
        "ssl_ca": OptionSpec("certificate"),
        "ssl_cert": OptionSpec("certificate"),
        "ssl_key": OptionSpec("certificate"),
        "ssl_disabled": OptionSpec("bool"),
        "ssl_verify_cert": OptionSpec("bool"),
        "ssl_verify_identity": OptionSpec("bool"),
        "charset": OptionSpec("choice", ("utf8mb4", "utf8", "utf8mb3", "latin1", "ascii")),
        "connect_timeout": _TIMEOUT,
        "read_timeout": OptionSpec("int", high=READ_TIMEOUT_CEILING_S),
        "write_timeout": OptionSpec("int", high=READ_TIMEOUT_CEILING_S),
    },
    "sqlite": {
        # SQLite is always opened read-only; `true` is accepted for connections saved before that.
        "read_only": OptionSpec("choice", ("true",)),
        "timeout": _TIMEOUT,
    },
}
_NAME = re.compile(r"^[A-Za-z0-9 _.\-]{1,63}$")
_BOOL = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _option_value(engine: str, key: str, spec: OptionSpec, value: Any, cert_dir: Path | None) -> Any:
    where = f"Option {key!r}"
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL:
            return _BOOL[value.strip().lower()]
        raise PolicyViolation("options", f"{where} must be true or false.")
    if spec.kind == "int":
        number = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, str) and value.strip().isdigit():
            number = int(value.strip())
        if number is None or not spec.low <= number <= spec.high:
            raise PolicyViolation("options", f"{where} must be a whole number of seconds from {spec.low} to "
                                             f"{spec.high} (the server's ceiling).")
        return number
    text = str(value).strip().lower() if isinstance(value, bool) else value
    if not isinstance(text, str):
        raise PolicyViolation("options", f"{where} must be a string.")
    if spec.kind == "choice":
        if text not in spec.choices:
            raise PolicyViolation("options", f"{where} must be one of: {', '.join(spec.choices)}.")
        return text
    if spec.kind == "name":
        if not _NAME.match(text):
            raise PolicyViolation("options", f"{where} may hold letters, digits, spaces, '_', '.' and '-' "
                                             "(at most 63).")
        return text
    # certificate: a file name inside the configured directory, never a path of the user's choosing
    if cert_dir is None:
        raise PolicyViolation("options", f"{where} names a certificate file, but this server has no certificate "
                                         "directory (set ETL_SSL_DIR).")
    resolved = _inside(cert_dir, text)
    if resolved is None or not resolved.is_file():
        raise PolicyViolation("options", f"{where}: no such file in the server's certificate directory.")
    return str(resolved)


def _clean_options(engine: str, options: dict[str, Any], cert_dir: Path | None) -> dict[str, Any]:
    if not isinstance(options, dict):
        raise PolicyViolation("options", "Options must be a JSON object.")
    specs = OPTION_SPECS[engine]
    cleaned: dict[str, Any] = {}
    for key, value in options.items():
        spec = specs.get(key)
        if spec is None:
            allowed = ", ".join(sorted(specs)) or "none"
            raise PolicyViolation("options", f"Option {key!r} is not allowed for {engine} (allowed: {allowed}).")
        cleaned[key] = _option_value(engine, key, spec, value, cert_dir)
    return cleaned


# --- hosts ------------------------------------------------------------------------


@dataclass(frozen=True)
class HostRule:
    """One entry of ETL_SOURCE_HOSTS: a network (CIDR or address) or a host name (`*.` wildcard), allow or deny."""

    pattern: str
    deny: bool = False

    def matches(self, host: str, addresses: Iterable[str]) -> bool:
        pattern = self.pattern
        try:
            network = ipaddress.ip_network(pattern, strict=False)
        except ValueError:
            name = host.lower().rstrip(".")
            if pattern.startswith("*."):
                return name.endswith(pattern[1:])
            return name == pattern
        for address in addresses:
            ip = ipaddress.ip_address(address)
            if ip.version == 6 and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            if ip.version == network.version and ip in network:
                return True
        return False


def parse_host_rules(text: str) -> tuple[HostRule, ...]:
    """`"db.example.com, 10.0.0.0/8, !10.9.0.0/16"` -> rules; `!` denies. Raises ValueError on a bad entry."""
    rules = []
    for raw in text.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        deny = entry.startswith("!")
        entry = entry.lstrip("!").strip()
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if not re.fullmatch(r"(\*\.)?[a-z0-9]([a-z0-9\-.]*[a-z0-9])?", entry):
                raise ValueError(f"not a network, address or host name: {raw.strip()!r}") from None
        rules.append(HostRule(entry, deny))
    return tuple(rules)


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({info[4][0] for info in infos})


# --- the policy -------------------------------------------------------------------


@dataclass(frozen=True)
class ProtectedDatabase:
    """The product's own database on a server: a source connection may never point at it."""

    engine: str
    host: str
    port: int
    database: str


@dataclass(frozen=True)
class SourcePolicy:
    sqlite_root: Path | None = None
    # Files no SQLite source may be (the product's own database), wherever the root is.
    forbidden_files: tuple[Path, ...] = ()
    # Directories no SQLite source may be in (the data directory), unless the root itself is inside them.
    forbidden_dirs: tuple[Path, ...] = ()
    ssl_dir: Path | None = None
    allow_unix_sockets: bool = False
    host_rules: tuple[HostRule, ...] = ()
    protected: tuple[ProtectedDatabase, ...] = ()
    resolver: Resolver = field(default=_resolve, compare=False)


_ENGINES = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql", "mariadb": "mysql",
            "sqlite": "sqlite", "sqlite3": "sqlite"}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


def enforce(params: Any, policy: SourcePolicy) -> Any:
    """`params` (a `ConnectionParams`) made safe to use, or PolicyViolation naming the field.

    The returned copy carries the SQLite file's resolved real path and the options as
    validated (certificate names turned into paths inside the certificate directory).
    """
    engine = _ENGINES.get((params.engine or "").strip().lower())
    if engine is None:
        raise PolicyViolation("engine", "Unsupported database engine: use postgresql, mysql or sqlite.")
    options = _clean_options(engine, dict(params.options or {}), policy.ssl_dir)
    if engine == "sqlite":
        return replace(params, database=str(_sqlite_path(params.database, policy)), options=options, host="",
                       port=None)
    _check_server(engine, params, policy)
    return replace(params, options=options)


def _inside(root: Path, name: str) -> Path | None:
    """`name` (relative to `root`, or absolute) resolved through every symlink, if it stays inside `root`."""
    if not name or "\x00" in name:
        return None
    real_root = Path(os.path.realpath(root))
    candidate = Path(os.path.realpath(real_root / os.path.expanduser(name)))
    if os.path.commonpath([real_root, candidate]) != str(real_root):
        return None
    return candidate


def _sqlite_path(database: str, policy: SourcePolicy) -> Path:
    path = (database or "").strip()
    if policy.sqlite_root is None:
        raise PolicyViolation("database", "SQLite sources are disabled on this server (ETL_SQLITE_ROOT is not set).")
    if not path or path == ":memory:" or path.startswith("file:"):
        raise PolicyViolation("database", "Enter the path of a SQLite file inside the SQLite source directory.")
    resolved = _inside(policy.sqlite_root, path)
    if resolved is None:
        raise PolicyViolation("database", f"SQLite files must be inside the server's SQLite source directory "
                                          f"({policy.sqlite_root}).")
    if any(os.path.realpath(own) == str(resolved) for own in policy.forbidden_files):
        raise PolicyViolation("database", "That is the product's own database: it cannot be a source.")
    for data_dir in policy.forbidden_dirs:
        # The data directory (keys, the app database) is never a source, even under a wide root; only the
        # root's own files are, when the root itself lives there (the default .data/sources).
        if _is_within(resolved, data_dir) and not _is_within(policy.sqlite_root, data_dir):
            raise PolicyViolation("database", "That path is in the product's own data directory, not in the SQLite "
                                              "source directory.")
    if not resolved.is_file():
        raise PolicyViolation("database", "No SQLite file at that path inside the SQLite source directory.")
    return resolved


def _is_within(path: Path | str, directory: Path | str) -> bool:
    real_dir = os.path.realpath(directory)
    return os.path.commonpath([real_dir, os.path.realpath(path)]) == real_dir


def _check_server(engine: str, params: Any, policy: SourcePolicy) -> None:
    host = (params.host or "").strip()
    if not host:
        # libpq and the MySQL client fall back to a local Unix socket for an empty host.
        raise PolicyViolation("host", "Enter the database host.")
    if host.startswith("/") or host.startswith("@"):
        if not policy.allow_unix_sockets:
            raise PolicyViolation("host", "Unix sockets are not allowed on this server: enter a host name or address.")
        return
    if "," in host or any(ch.isspace() for ch in host) or "://" in host or "=" in host:
        raise PolicyViolation("host", "Enter one host name or IP address.")
    if engine == "postgresql" and "=" in (params.database or ""):
        raise PolicyViolation("database", "Enter a database name, not a connection string.")
    port = int(params.port or DEFAULT_PORTS[engine])
    addresses = policy.resolver(host, port)
    for rule in policy.host_rules:
        if rule.deny and rule.matches(host, addresses):
            raise PolicyViolation("host", "This server does not allow connections to that host.")
    allows = [rule for rule in policy.host_rules if not rule.deny]
    if allows and not any(rule.matches(host, addresses) for rule in allows):
        raise PolicyViolation("host", "This server does not allow connections to that host.")
    for own in policy.protected:
        if own.engine != engine or own.port != port or own.database != (params.database or ""):
            continue
        if host.lower() == own.host.lower() or set(addresses) & set(policy.resolver(own.host, own.port)):
            raise PolicyViolation("database", "That is the product's own database: it cannot be a source.")


def driver_options(engine: str, options: dict[str, Any]) -> dict[str, Any]:
    """The allow-listed options typed for the driver; an option off the list is refused.

    Certificate names are passed as given: `enforce()` has already turned them into
    paths inside the certificate directory (this runs on every connect, `enforce()` once).
    """
    specs = OPTION_SPECS[engine]
    typed: dict[str, Any] = {}
    for key, value in (options or {}).items():
        spec = specs.get(key)
        if spec is None:
            raise PolicyViolation("options", f"Option {key!r} is not allowed for {engine}.")
        typed[key] = value if spec.kind == "certificate" else _option_value(engine, key, spec, value, None)
    return typed
