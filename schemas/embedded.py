"""The embedded PostgreSQL + PostGIS cluster the platform runs when no URL is given.

It lives in one project folder (``.sibiao/pg`` by default): ``data/`` (the cluster),
``run/`` (the socket), ``log/`` and ``sibiao.conf`` (port and tuning). The server
refuses to run as root, so as root the cluster belongs to the ``postgres`` system user
(or a ``sibiao`` user created for it). Missing Debian packages are installed when this
process may (root or password-less sudo); otherwise the error says what to install.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from schemas.errors import DatabaseError

SUPERUSER = "sibiao"
_TUNING = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "'512MB'",
    "work_mem": "'32MB'",
    "maintenance_work_mem": "'512MB'",
    "max_wal_size": "'4GB'",
    "checkpoint_timeout": "'15min'",
    "wal_level": "'minimal'",
    "max_wal_senders": "0",
    "jit": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


@dataclass(frozen=True)
class PgInstall:
    """Where the PostgreSQL server binaries are and whether PostGIS is beside them."""

    bindir: Path
    version: int
    has_postgis: bool


class ClusterState(StrEnum):
    """What ``sibiao db status`` reports for the embedded cluster."""

    missing = "not initialised"
    stopped = "stopped"
    running = "running"


@dataclass(frozen=True)
class ClusterStatus:
    """State, port and folder of the embedded cluster."""

    state: ClusterState
    root: Path
    port: int | None
    version: int | None


def _version_of(bindir: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def _sharedir(bindir: Path, version: int) -> Path:
    debian = Path(f"/usr/share/postgresql/{version}")
    if debian.is_dir():
        return debian
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [str(pg_config), "--sharedir"], capture_output=True, text=True, check=True
            )
            return Path(out.stdout.strip())
    return bindir.parent / "share"


def find_install(pg_bin: Path | None = None) -> PgInstall | None:
    """Return the newest PostgreSQL server install (preferring one with PostGIS)."""
    candidates: list[Path] = []
    if pg_bin is not None:
        candidates.append(pg_bin)
    else:
        candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
    found: list[PgInstall] = []
    for bindir in candidates:
        if not (bindir / "initdb").exists() or not (bindir / "pg_ctl").exists():
            continue
        version = _version_of(bindir)
        if version is None:
            continue
        control = _sharedir(bindir, version) / "extension" / "postgis.control"
        found.append(PgInstall(bindir=bindir, version=version, has_postgis=control.exists()))
    if not found:
        return None
    found.sort(key=lambda inst: (inst.has_postgis, inst.version), reverse=True)
    return found[0]


def _may_install() -> list[str] | None:
    """Return the command prefix to run apt-get with, or None when we may not."""
    if shutil.which("apt-get") is None:
        return None
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        ok = subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0
        if ok:
            return ["sudo", "-n"]
    return None


def _apt_install(prefix: list[str], packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        proc = subprocess.run([*prefix, *cmd], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DatabaseError(f"`{' '.join(cmd)}` failed: {tail[0]}")


def ensure_install(pg_bin: Path | None = None) -> PgInstall:
    """Return a PostgreSQL install with PostGIS, installing Debian packages when allowed."""
    install = find_install(pg_bin)
    if install is not None and install.has_postgis:
        return install
    version = install.version if install else None
    wanted = ["postgresql"] if install is None else []
    wanted.append(f"postgresql-{version}-postgis-3" if version else "postgis")
    prefix = _may_install()
    if pg_bin is not None or prefix is None:
        what = "PostgreSQL with PostGIS" if install is None else "PostGIS"
        hint = (
            f"apt-get install {' '.join(wanted)}"
            if version
            else ("apt-get install postgresql postgresql-<version>-postgis-3")
        )
        raise DatabaseError(
            f"{what} is not installed and this process may not install it: run `sudo {hint}` "
            "(or set SIBIAO_DATABASE_URL to a PostGIS server)"
        )
    if install is None:
        _apt_install(prefix, ["postgresql"])
        install = find_install(pg_bin)
        if install is None:
            raise DatabaseError("installed Debian's postgresql but found no server binaries")
    if not install.has_postgis:
        _apt_install(prefix, [f"postgresql-{install.version}-postgis-3"])
        install = find_install(pg_bin)
        if install is None or not install.has_postgis:
            raise DatabaseError("installed PostGIS but the server still does not find it")
    return install


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class EmbeddedCluster:
    """A PostgreSQL cluster in a project folder, started and stopped on demand.

    ``tuning`` overrides server settings of ``sibiao.conf`` (a throwaway cluster for fault
    tests asks for less memory); the project's cluster uses the defaults.
    """

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        pg_bin: Path | None = None,
        tuning: dict[str, str] | None = None,
    ):
        self._link = root.absolute()
        self._place(root.resolve())
        self._wanted_port = port
        self._pg_bin = pg_bin
        self._tuning = {**_TUNING, **(tuning or {})}

    def _place(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.conf = self.data / "sibiao.conf"
        self.logfile = root / "log" / "postgresql.log"

    def _relocate(self, user: pwd.struct_passwd) -> None:
        """Move an empty cluster folder the server user cannot reach to /var/lib, via a link."""
        if self.data.exists() or self._link.is_symlink():
            raise DatabaseError(
                f"user {user.pw_name} cannot reach {self.root} (a parent folder is not "
                "searchable by others); set SIBIAO_DATA_DIR to a folder under /var or /tmp"
            )
        digest = hashlib.sha256(str(self._link).encode()).hexdigest()[:12]
        target = Path("/var/lib/sibiao/clusters") / digest
        target.mkdir(parents=True, exist_ok=True)
        for parent in (target, *target.parents[:3]):
            parent.chmod(parent.stat().st_mode | 0o711)
        shutil.rmtree(self._link)
        self._link.symlink_to(target, target_is_directory=True)
        self._place(target)

    # -- who runs the server -------------------------------------------------
    def _os_user(self) -> pwd.struct_passwd | None:
        """Return the OS user to run the server as, or None to run as ourselves."""
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "sibiao"):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "sibiao"],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam("sibiao")

    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        user = self._os_user()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})
        kwargs: dict[str, object] = {}
        if user is not None:
            env["HOME"] = user.pw_dir if os.path.isdir(user.pw_dir) else str(self.root)
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root,
            **kwargs,  # type: ignore[call-overload]
        )
        if check and proc.returncode != 0:
            message = (proc.stderr or proc.stdout).strip().splitlines()
            raise DatabaseError(
                f"{Path(args[0]).name} failed: {message[-1] if message else 'no output'}"
                f" (see {self.logfile})"
            )
        return proc

    def _check_owner(self) -> None:
        """Refuse a data folder that belongs to another user (when we are not root)."""
        if os.geteuid() == 0 or not self.root.exists():
            return
        owner = self.root.stat().st_uid
        if owner != os.geteuid():
            who = pwd.getpwuid(owner).pw_name
            raise DatabaseError(
                f"the data folder {self.root} belongs to user {who}: run as {who} "
                "or set SIBIAO_DATA_DIR to a folder of your own"
            )

    def _prepare_folder(self) -> None:
        """Create the folder and make sure the server's OS user owns it."""
        user = self._os_user()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except PermissionError:
            raise DatabaseError(
                f"cannot create the data folder {self.root}: permission denied; "
                "set SIBIAO_DATA_DIR to a folder you can write"
            ) from None
        self._check_owner()
        (self.root / "log").mkdir(exist_ok=True)
        if user is None:
            return
        if self.root.stat().st_uid != user.pw_uid or not (self.data / "PG_VERSION").exists():
            for path in (self.root, *self.root.rglob("*")):
                with contextlib.suppress(FileNotFoundError):
                    if path.stat(follow_symlinks=False).st_uid != user.pw_uid:
                        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
        if self._run(["test", "-w", str(self.root)], check=False).returncode != 0:
            self._relocate(user)
            (self.root / "log").mkdir(exist_ok=True)
            for path in (self.root, self.root / "log"):
                os.chown(path, user.pw_uid, user.pw_gid)

    # -- configuration -------------------------------------------------------
    def socket_dir(self) -> Path:
        """Return the socket folder (a short path in /tmp when ours is too long)."""
        own = self.root / "run"
        if len(str(own)) <= 80:
            return own
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"sibiao-{digest}"

    def configured_port(self) -> int | None:
        """Return the port written in the cluster's configuration."""
        try:
            text = self.conf.read_text()
        except OSError:
            return None
        match = re.search(r"^port\s*=\s*(\d+)", text, re.MULTILINE)
        return int(match.group(1)) if match else None

    def _write_conf(self, port: int) -> None:
        lines = [f"port = {port}", f"unix_socket_directories = '{self.socket_dir()}'"]
        lines += [f"{key} = {value}" for key, value in self._tuning.items()]
        tmp = self.root / "sibiao.conf.new"
        tmp.write_text(
            "# written by sibiao; edit SIBIAO_PG_PORT instead\n" + "\n".join(lines) + "\n"
        )
        user = self._os_user()
        if user is not None:
            os.chown(tmp, user.pw_uid, user.pw_gid)
        os.replace(tmp, self.conf)

    # -- lifecycle -------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        lock = self.root.parent / f".{self.root.name}.lock"
        try:
            self.root.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock, "a")  # noqa: SIM115 - closed below
        except PermissionError:
            raise DatabaseError(
                f"cannot write in {self.root.parent}: permission denied; "
                "set SIBIAO_DATA_DIR to a folder you can write"
            ) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def status(self) -> ClusterStatus:
        """Return whether the cluster exists and runs, and on which port."""
        if not (self.data / "PG_VERSION").exists():
            return ClusterStatus(ClusterState.missing, self.root, None, None)
        version = int((self.data / "PG_VERSION").read_text().strip())
        install = find_install(self._pg_bin)
        running = False
        if install is not None:
            proc = self._run(
                [str(install.bindir / "pg_ctl"), "status", "-D", str(self.data)], check=False
            )
            running = proc.returncode == 0
        state = ClusterState.running if running else ClusterState.stopped
        return ClusterStatus(state, self.root, self.configured_port(), version)

    def start(self) -> ClusterStatus:
        """Install, initialise and start the cluster as needed; return its status."""
        self._check_owner()
        with self._lock():
            install = ensure_install(self._pg_bin)
            self._prepare_folder()
            if not (self.data / "PG_VERSION").exists():
                self._initdb(install)
            current = self.status()
            if current.state is ClusterState.running:
                return current
            self._choose_port()
            sock = self.socket_dir()
            sock.mkdir(parents=True, exist_ok=True)
            user = self._os_user()
            if user is not None:
                os.chown(sock, user.pw_uid, user.pw_gid)
            self._run(
                [
                    str(install.bindir / "pg_ctl"),
                    "start",
                    "-D",
                    str(self.data),
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(self.logfile),
                ]
            )
            return self.status()

    def _initdb(self, install: PgInstall) -> None:
        if self.data.exists() and any(self.data.iterdir()):
            raise DatabaseError(
                f"{self.data} is not empty but holds no PostgreSQL cluster; move it away"
            )
        self._run(
            [
                str(install.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ]
        )
        with open(self.data / "postgresql.conf", "a") as handle:
            handle.write("\ninclude_if_exists = 'sibiao.conf'\n")

    def _choose_port(self) -> None:
        port = self._wanted_port or self.configured_port()
        if port is not None and not _port_free(port):
            if self._wanted_port is not None:
                raise DatabaseError(
                    f"port {port} (SIBIAO_PG_PORT) is in use by another program: "
                    "choose a free port or unset SIBIAO_PG_PORT to pick one"
                )
            port = None
        self._write_conf(port or _free_port())

    def stop(self) -> ClusterStatus:
        """Stop the server (fast shutdown) if it runs."""
        with self._lock():
            current = self.status()
            if current.state is ClusterState.running:
                install = find_install(self._pg_bin)
                assert install is not None
                self._run(
                    [
                        str(install.bindir / "pg_ctl"),
                        "stop",
                        "-D",
                        str(self.data),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        "60",
                    ]
                )
            return self.status()

    def restart(self) -> ClusterStatus:
        """Restart a running server (fast: open sessions are ended), as an outage would."""
        with self._lock():
            install = find_install(self._pg_bin)
            if install is None or self.status().state is not ClusterState.running:
                raise DatabaseError(f"the cluster in {self.root} is not running")
            self._run(
                [
                    str(install.bindir / "pg_ctl"),
                    "restart",
                    "-D",
                    str(self.data),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(self.logfile),
                ]
            )
            return self.status()

    def url(self, database: str, *, driver: str = "postgresql+psycopg") -> str:
        """Return the connection URL of ``database`` on this cluster."""
        port = self.configured_port()
        if port is None:
            raise DatabaseError("the embedded cluster is not initialised: run `sibiao db start`")
        return f"{driver}://{SUPERUSER}@127.0.0.1:{port}/{database}"
