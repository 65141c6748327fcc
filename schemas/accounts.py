"""Who may call: roles, the caller (``Principal``), people's accounts, intake systems' API keys.

This is the lowest floor on purpose: the API (authentication), the CLI (``sibiao users``,
``sibiao keys``) and, later, ``cases`` (filtering cases by the caller's towns or department)
all need these names, and none of them may import another. The SQL here touches only the
platform's own ``users`` and ``api_keys`` tables.

Passwords are hashed with scrypt (RFC 7914, ``hashlib.scrypt``): a 16-byte random salt per
password and N=2^16, r=8, p=2 (64 MiB, OWASP's equivalent of N=2^17, p=1), the parameters
stored with the hash so they can be raised later (:func:`needs_rehash`). API keys look like
``sbk_<8 hex>_<43 url-safe chars>``; only the SHA-256 of the whole key is stored and the
8-hex prefix finds its row. The secret is shown once, when the key is made.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from schemas.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from schemas.tables import USER_ROLES, api_keys, divisions, users


class Role(StrEnum):
    """What a caller is; api/policy.yaml says what each may do."""

    analyst = "analyst"  # loads and checks layer data; may read personal data
    dispatcher = "dispatcher"  # a town's command sub-centre: its towns' cases
    department_handler = "department_handler"  # a district department: its cases and calls
    planner = "planner"  # reads layers (public, internal), planner queries
    supervisor = "supervisor"  # district command centre / supervision office: all cases
    admin = "admin"  # accounts, keys, routing rules, everything
    system = "system"  # an intake system calling with its API key
    anonymous = "anonymous"  # no credentials


#: Roles a person's account may have (``system`` is for keys, ``anonymous`` for nobody).
PERSON_ROLES: tuple[Role, ...] = tuple(Role(r) for r in USER_ROLES)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
SYSTEM_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
RESERVED_NAMES = frozenset({"anonymous", "system"})


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request: who, in what role, for which towns or department.

    ``via`` says how the caller was recognised: ``token``, ``api_key``, ``anonymous`` or
    ``auth_disabled`` (authentication switched off: everything is allowed, and the name is
    whatever the client claims).
    """

    name: str
    role: Role
    towns: tuple[str, ...] = ()
    department: str | None = None
    system: str | None = None
    key_id: int | None = None
    via: str = "anonymous"

    @property
    def authenticated(self) -> bool:
        """Return whether the caller showed credentials that held."""
        return self.role is not Role.anonymous

    @property
    def town_scope(self) -> tuple[str, ...] | None:
        """Return the towns whose cases the caller is limited to (None: not limited by town)."""
        return self.towns if self.role is Role.dispatcher else None

    @property
    def department_scope(self) -> str | None:
        """Return the department whose cases the caller is limited to (None: not limited)."""
        return self.department if self.role is Role.department_handler else None


ANONYMOUS = Principal(name="anonymous", role=Role.anonymous)


def unrestricted(name: str | None = None) -> Principal:
    """Return the caller when authentication is switched off: allowed everything."""
    return Principal(name=name or "anonymous", role=Role.admin, via="auth_disabled")


@dataclass(frozen=True, slots=True)
class User:
    """A person's account (never the password hash)."""

    id: int
    name: str
    role: Role
    towns: tuple[str, ...]
    department: str | None
    disabled: bool
    created_at: datetime
    last_login: datetime | None

    def principal(self, via: str = "token") -> Principal:
        """Return the caller this account makes."""
        return Principal(
            name=self.name, role=self.role, towns=self.towns, department=self.department, via=via
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the account as JSON-ready data."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "towns": list(self.towns),
            "department": self.department,
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat(),
            "last_login": self.last_login.isoformat() if self.last_login else None,
        }


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An intake system's key (never the secret, never its hash)."""

    id: int
    system: str
    prefix: str
    created_by: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def name(self) -> str:
        """Return how the key appears as an actor and in the audit log."""
        return f"key:{self.id}:{self.system}"

    def principal(self, via: str = "api_key") -> Principal:
        """Return the caller this key makes: role system, bound to its system."""
        return Principal(
            name=self.name, role=Role.system, system=self.system, key_id=self.id, via=via
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the key's record as JSON-ready data."""
        return {
            "id": self.id,
            "system": self.system,
            "prefix": self.prefix,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


# ---------------------------------------------------------------- passwords

SCRYPT_N = 2**16
SCRYPT_R = 8
SCRYPT_P = 2
_SALT_BYTES = 16
_HASH_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * r * n + 2**20, dklen=_HASH_BYTES
    )


def hash_password(password: str) -> str:
    """Return ``scrypt$N$r$p$salt$hash`` for a password (fresh random salt)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Return whether ``password`` matches a stored hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(encoded: str) -> bool:
    """Return whether a stored hash was made with weaker parameters than today's."""
    parts = encoded.split("$")
    return len(parts) != 6 or parts[1:4] != [str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P)]


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def check_password_strength(password: str) -> None:
    """Raise InvalidInput for a password too short or too long."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"a password has at most {MAX_PASSWORD} characters")


# ---------------------------------------------------------------- people

_USER_COLUMNS = (
    users.c.id,
    users.c.name,
    users.c.role,
    users.c.towns,
    users.c.department,
    users.c.disabled,
    users.c.created_at,
    users.c.last_login,
)


def _user(row: Any) -> User:
    return User(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        towns=tuple(row.towns or ()),
        department=row.department,
        disabled=row.disabled,
        created_at=row.created_at,
        last_login=row.last_login,
    )


def _check_name(name: str) -> str:
    name = name.strip()
    if not NAME_PATTERN.match(name) or name.lower() in RESERVED_NAMES:
        raise InvalidInput(
            f"user name {name[:70]!r} must be 1-64 letters, digits, '_', '.', '@' or '-' "
            "and not 'anonymous' or 'system'"
        )
    return name


def _check_scope(
    conn: Connection, role: Role, towns: Sequence[str], department: str | None
) -> tuple[tuple[str, ...], str | None]:
    towns = tuple(dict.fromkeys(t.strip() for t in towns if t.strip()))
    department = (department or "").strip() or None
    if role is Role.dispatcher:
        if not towns:
            raise InvalidInput("a dispatcher serves at least one town: give --town CODE")
        known = set(
            conn.execute(
                select(divisions.c.code).where(
                    divisions.c.level == "town", divisions.c.code.in_(towns)
                )
            ).scalars()
        )
        unknown = [t for t in towns if t not in known]
        if unknown:
            raise InvalidInput(
                f"no town {unknown[0][:12]!r} in the divisions register (9-digit town codes)"
            )
    elif towns:
        raise InvalidInput("only dispatchers serve towns")
    if role is Role.department_handler:
        if department is None:
            raise InvalidInput("a department handler serves a department: give --department")
        if len(department) > 200:
            raise InvalidInput("a department name has at most 200 characters")
    elif department is not None:
        raise InvalidInput("only department handlers serve a department")
    return towns, department


def create_user(
    conn: Connection,
    *,
    name: str,
    role: Role | str,
    password: str,
    towns: Iterable[str] = (),
    department: str | None = None,
    district_code: str,
) -> User:
    """Create a person's account; raise InvalidInput or Conflict (name taken)."""
    name = _check_name(name)
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(
            f"role {str(role)[:40]!r} is not one of {', '.join(r.value for r in PERSON_ROLES)}"
        ) from None
    if role not in PERSON_ROLES:
        raise InvalidInput(f"a person cannot have the role {role.value!r}")
    check_password_strength(password)
    town_codes, dept = _check_scope(conn, role, list(towns), department)
    if get_user(conn, name) is not None:
        raise Conflict(f"user {name!r} exists")
    try:
        row = conn.execute(
            users.insert()
            .values(
                name=name,
                password_hash=hash_password(password),
                role=role.value,
                towns=list(town_codes),
                department=dept,
                district_code=district_code,
            )
            .returning(*_USER_COLUMNS)
        ).one()
    except IntegrityError:
        raise Conflict(f"user {name!r} exists") from None
    return _user(row)


def get_user(conn: Connection, name: str) -> User | None:
    """Return an account by name, or None."""
    row = conn.execute(select(*_USER_COLUMNS).where(users.c.name == name)).one_or_none()
    return None if row is None else _user(row)


def list_users(conn: Connection) -> list[User]:
    """Return every account, by name."""
    return [_user(r) for r in conn.execute(select(*_USER_COLUMNS).order_by(users.c.name))]


def disable_user(conn: Connection, name: str) -> User:
    """Disable an account (its tokens stop working at once); raise NotFound."""
    row = conn.execute(
        update(users).where(users.c.name == name).values(disabled=True).returning(*_USER_COLUMNS)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no user {name[:70]!r}")
    return _user(row)


def authenticate(conn: Connection, name: str, password: str, *, now: datetime) -> User:
    """Return the enabled account whose password this is; raise Unauthenticated otherwise.

    An unknown name costs the same scrypt work as a wrong password, so timing does not tell
    which names exist.
    """
    row = conn.execute(
        select(*_USER_COLUMNS, users.c.password_hash).where(users.c.name == name)
    ).one_or_none()
    if row is None:
        verify_password(password, _dummy_hash())
        raise Unauthenticated("wrong user name or password")
    if not verify_password(password, row.password_hash):
        raise Unauthenticated("wrong user name or password")
    if row.disabled:
        raise Unauthenticated(f"the account {name!r} is disabled")
    values: dict[str, Any] = {"last_login": now}
    if needs_rehash(row.password_hash):
        values["password_hash"] = hash_password(password)
    conn.execute(update(users).where(users.c.id == row.id).values(**values))
    return _user(row)


def principal_of(conn: Connection, name: str) -> Principal | None:
    """Return the caller an enabled account makes now (role and towns as stored), or None."""
    user = get_user(conn, name)
    if user is None or user.disabled:
        return None
    return user.principal()


def ensure_admin(conn: Connection, *, district_code: str, name: str = "admin") -> str | None:
    """Create ``admin`` with a random password when no enabled admin exists; return it.

    Return None when an enabled admin exists; raise Conflict when none does but the name
    is taken by another (or a disabled) account.
    """
    exists = conn.execute(
        select(func.count())
        .select_from(users)
        .where(users.c.role == Role.admin.value, users.c.disabled.is_(False))
    ).scalar_one()
    if exists:
        return None
    if get_user(conn, name) is not None:
        raise Conflict(
            f"no enabled admin, but an account named {name!r} exists: "
            f"create another with `sibiao users add NAME --role admin`"
        )
    password = secrets.token_urlsafe(18)
    create_user(conn, name=name, role=Role.admin, password=password, district_code=district_code)
    return password


# ---------------------------------------------------------------- API keys

KEY_PATTERN = re.compile(r"^sbk_([0-9a-f]{8})_[A-Za-z0-9_-]{43}$")
_KEY_COLUMNS = (
    api_keys.c.id,
    api_keys.c.system,
    api_keys.c.prefix,
    api_keys.c.created_by,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
    api_keys.c.last_used_at,
)
_TOUCH_EVERY = timedelta(minutes=1)


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        system=row.system,
        prefix=row.prefix,
        created_by=row.created_by,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    conn: Connection, *, system: str, district_code: str, created_by: str | None = None
) -> tuple[ApiKey, str]:
    """Make a key bound to ``system``; return its record and the secret (shown only now)."""
    if not SYSTEM_PATTERN.match(system):
        raise InvalidInput(f"system {system[:40]!r} must be lower-case letters, digits and '_'")
    for _ in range(5):
        prefix = secrets.token_hex(4)
        secret = f"sbk_{prefix}_{secrets.token_urlsafe(32)}"
        taken = conn.execute(select(api_keys.c.id).where(api_keys.c.prefix == prefix)).first()
        if taken is None:
            break
    else:  # pragma: no cover - 2^32 prefixes
        raise Conflict("could not find a free key prefix; try again")
    row = conn.execute(
        api_keys.insert()
        .values(
            system=system,
            prefix=prefix,
            key_hash=_digest(secret),
            created_by=created_by,
            district_code=district_code,
        )
        .returning(*_KEY_COLUMNS)
    ).one()
    return _key(row), secret


def find_key(conn: Connection, secret: str, *, now: datetime) -> ApiKey | None:
    """Return the live key whose secret this is (noting its use), or None."""
    match = KEY_PATTERN.match(secret)
    if match is None:
        return None
    row = conn.execute(
        select(*_KEY_COLUMNS, api_keys.c.key_hash).where(api_keys.c.prefix == match.group(1))
    ).one_or_none()
    if row is None or not hmac.compare_digest(row.key_hash, _digest(secret)):
        return None
    if row.revoked_at is not None:
        return None
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
        conn.execute(update(api_keys).where(api_keys.c.id == row.id).values(last_used_at=now))
    return _key(row)


def revoke_key(conn: Connection, key_id: int, *, now: datetime) -> ApiKey:
    """Revoke a key (at once; revoking twice keeps the first time); raise NotFound."""
    conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    row = conn.execute(select(*_KEY_COLUMNS).where(api_keys.c.id == key_id)).one_or_none()
    if row is None:
        raise NotFound(f"no API key {key_id}")
    return _key(row)


def list_keys(conn: Connection) -> list[ApiKey]:
    """Return every key's record, newest first."""
    return [_key(r) for r in conn.execute(select(*_KEY_COLUMNS).order_by(api_keys.c.id.desc()))]
