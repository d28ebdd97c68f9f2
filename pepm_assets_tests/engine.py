"""Real services for the multi-host engine test: PostgreSQL, a Celery broker (Redis) and Celery
workers, each started in a temp folder by a context manager and stopped on exit.

Every helper raises `EngineUnavailable(reason)` when what it needs is missing (a binary, a Python
package, the `postgres` user when running as root), so a test can skip with the reason printed:

    try:
        with local_postgres(tmp / "pg") as pg_url, local_redis(tmp / "redis") as broker_url:
            ...
    except EngineUnavailable as exc:
        pytest.skip(str(exc))

`pepm_assets_tests/install_engine.sh` installs what they need (Debian: postgresql, redis-server;
PyPI: dagster-postgres, dagster-celery[redis] at the pins of ENGINE_PINS). docs/multihost.md
explains the set-up these reproduce on one machine.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

# the pairs that ship together with dagster 1.13.27 (the 0.29.x integration libraries follow 1.13.x)
ENGINE_PINS = ("dagster-postgres==0.29.27", "dagster-celery[redis]==0.29.27")
PG_SUPERUSER = "postgres"


class EngineUnavailable(RuntimeError):
    """A binary, package or user the engine test needs is missing here; the message says which."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen | None, what: str, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}{_tail(log)}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s{_tail(log)}")


def _tail(log: Path | None, n: int = 3000) -> str:
    if log is None or not log.is_file():
        return ""
    return "\n--- " + str(log) + " ---\n" + log.read_text(encoding="utf-8", errors="replace")[-n:]


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    """Stop a process we started (its whole process group when it leads one), by its id."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig) if os.getpgid(proc.pid) == proc.pid else proc.send_signal(sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL) if os.getpgid(proc.pid) == proc.pid else proc.kill()
        proc.wait(5)


# --- PostgreSQL --------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """The folder of initdb / pg_ctl / postgres: $PEPM_PG_BINDIR, PATH, or Debian's /usr/lib/postgresql/<v>/bin."""
    if os.environ.get("PEPM_PG_BINDIR"):
        return Path(os.environ["PEPM_PG_BINDIR"])
    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if debian:
        return Path(debian[-1]).parent
    raise EngineUnavailable("PostgreSQL server binaries not found (initdb): apt-get install postgresql, or set PEPM_PG_BINDIR")


@contextlib.contextmanager
def local_postgres(tmp: Path, dbname: str = "dagster", extra_dbs: Sequence[str] = (), timeout: float = 60.0) -> Iterator[str]:
    """A throw-away PostgreSQL cluster (initdb, trust auth, TCP on 127.0.0.1:<free port>); yields
    `postgresql://postgres@127.0.0.1:<port>/<dbname>` and stops + removes the cluster on exit.
    `extra_dbs` are created beside it (e.g. "mlflow": the same URL with that database name).

    initdb and postgres refuse to run as root: as root the cluster belongs to the `postgres` user
    (created by the Debian package) and lives in a fresh folder under /tmp that user can reach
    (pytest's tmp folders are mode 0700, closed to it); `tmp` then only holds the server log."""
    bindir = postgres_bindir()
    lacking = [b for b in ("initdb", "postgres", "pg_isready", "createdb") if not (bindir / b).is_file()]
    if lacking:
        raise EngineUnavailable(f"PostgreSQL binaries missing in {bindir}: {', '.join(lacking)} (apt-get install postgresql)")
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    run_as: dict = {}
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam(PG_SUPERUSER)
        except KeyError:
            raise EngineUnavailable(
                "running as root and there is no 'postgres' user to own the cluster (apt-get install postgresql creates it)"
            ) from None
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        base = Path(tempfile.mkdtemp(prefix="pepm-pg-"))
        os.chown(base, pw.pw_uid, pw.pw_gid)
    else:
        base = tmp
    data, sockdir = base / "data", base / "sock"
    log = tmp / "postgres.log"
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "PGTZ": "UTC"}
    proc = None

    def cleanup() -> None:
        if proc is not None:
            _stop(proc, signal.SIGINT)  # "fast" shutdown
        shutil.rmtree(base if run_as else data, ignore_errors=True)

    try:
        for d in (data, sockdir):
            d.mkdir()
            if run_as:
                os.chown(d, run_as["user"], run_as["group"])
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", PG_SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
            check=True, capture_output=True, env=env, cwd=base, **run_as,
        )  # fmt: skip
        # postgres itself in the foreground (not pg_ctl -l: a log file the postgres user may not write)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(sockdir),
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=base, start_new_session=True, **run_as,
            )  # fmt: skip
        _wait_ready(bindir, port, proc, log, timeout, env, run_as)
        for name in dict.fromkeys([dbname, *extra_dbs]):
            if name != "postgres":
                subprocess.run(
                    [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_SUPERUSER, name],
                    check=True, capture_output=True, env=env, cwd=base, **run_as,
                )  # fmt: skip
        url = f"postgresql://{PG_SUPERUSER}@127.0.0.1:{port}/{dbname}"
    except BaseException as exc:
        cleanup()
        if isinstance(exc, subprocess.CalledProcessError):
            err = (exc.stderr or b"").decode(errors="replace")
            raise RuntimeError(f"{Path(exc.cmd[0]).name} failed ({exc.returncode}): {err}{_tail(log)}") from exc
        raise
    try:
        yield url
    finally:
        cleanup()


def sqlalchemy_url(url: str) -> str:
    """`postgresql://…` -> `postgresql+psycopg2://…`: SQLAlchemy 2.1 maps a bare `postgresql://` to
    psycopg 3, which dagster-postgres does not install (it depends on psycopg2-binary), so a bare URL
    fails with "No module named 'psycopg'". libpq tools (psql, pg_isready) want the bare form."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg2://" + url[len(bare) :]
    return url


def _wait_ready(bindir: Path, port: int, proc: subprocess.Popen, log: Path, timeout: float, env: Mapping, run_as: dict) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {proc.returncode}{_tail(log)}")
        ok = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_SUPERUSER, "-q"],
            env=dict(env),
            capture_output=True,
            **run_as,
        )
        if ok.returncode == 0:
            return
        time.sleep(0.1)
    raise TimeoutError(f"postgres not ready on port {port} within {timeout:.0f} s{_tail(log)}")


# --- broker ------------------------------------------------------------------------------------


@contextlib.contextmanager
def local_redis(tmp: Path, timeout: float = 30.0) -> Iterator[str]:
    """redis-server on 127.0.0.1:<free port>, no persistence; yields `redis://127.0.0.1:<port>`
    (append `/0`, `/1`… for a database: broker and result backend may share or not)."""
    exe = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
    if exe is None:
        raise EngineUnavailable("redis-server not found: apt-get install redis-server")
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = tmp / "redis.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp), "--daemonize", "no"],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_port(port, proc, "redis-server", timeout, log)
        yield f"redis://127.0.0.1:{port}"
    finally:
        _stop(proc)


# --- Celery workers ----------------------------------------------------------------------------


def require_modules(python: str, modules: Sequence[str]) -> None:
    """Raise EngineUnavailable unless `python` imports every module (checked in that interpreter)."""
    if python == sys.executable:
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
    else:
        code = "import importlib.util,sys; print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
        res = subprocess.run([python, "-c", code, *modules], capture_output=True, text=True)
        missing = res.stdout.split() if res.returncode == 0 else list(modules)
    if missing:
        raise EngineUnavailable(
            f"{python} lacks {', '.join(missing)}: pip install {' '.join(ENGINE_PINS)} (pepm_assets_tests/install_engine.sh)"
        )


def celery_config_module(folder: Path, broker_url: str, backend_url: str, extra: Mapping[str, object] | None = None) -> Path:
    """Write `dagster_celery_config.py` into `folder` (put it on the workers' PYTHONPATH): the
    worker app `dagster_celery.app` reads its broker and backend from it (else it assumes RabbitMQ
    on localhost)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"broker_url": broker_url, "result_backend": backend_url, "worker_prefetch_multiplier": 1, **(extra or {})}
    path = folder / "dagster_celery_config.py"
    path.write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items()), encoding="utf-8")
    return path


@contextlib.contextmanager
def celery_worker(
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    *,
    name: str = "pepm-worker",
    queues: Sequence[str] = ("dagster",),
    concurrency: int = 2,
    pool: str = "prefork",
    python: str = sys.executable,
    timeout: float = 90.0,
) -> Iterator[subprocess.Popen]:
    """One Celery worker of the Dagster app (`celery -A dagster_celery.app worker`), started with
    `env` (DAGSTER_HOME, PYTHONPATH holding dagster_celery_config.py and the code, …) in `cwd`;
    yields once the worker answers a ping through the broker, stops it (warm shutdown) on exit."""
    require_modules(python, ["dagster_celery", "dagster_postgres", "redis", *(["gevent"] if pool == "gevent" else [])])
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "celery", "-A", "dagster_celery.app", "worker", "--loglevel=INFO", "--prefetch-multiplier=1",
           "-n", f"{name}@%h", "-c", str(concurrency), "-P", pool, "--without-gossip", "--without-mingle",
           *[a for q in queues for a in ("-Q", q)]]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_worker(python, env, cwd, name, proc, log, timeout)
        yield proc
    finally:
        _stop(proc, signal.SIGTERM, timeout=60)


def _wait_worker(python: str, env: Mapping[str, str], cwd: Path, name: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Ready when the worker's log says so (`celery@… ready.`); the ping through the broker that
    `celery inspect ping` does costs a second interpreter start, the log line does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker {name} exited with {proc.returncode}{_tail(log)}")
        if log.is_file() and f"{name}@" in (text := log.read_text(encoding="utf-8", errors="replace")) and " ready." in text:
            return
        time.sleep(0.1)
    raise TimeoutError(f"celery worker {name} not ready within {timeout:.0f} s{_tail(log)}")


@contextlib.contextmanager
def dagster_daemon(
    env: Mapping[str, str], cwd: Path, log: Path, *, workspace: str = "workspace.yaml", python: str = sys.executable
) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run -w <workspace>` (the run queue's dequeuer, among others) with `env`
    (DAGSTER_HOME of the Postgres instance) in `cwd`; stopped on exit. Queued runs start within
    `dequeue_interval_seconds` once it has loaded the workspace (a few seconds)."""
    require_modules(python, ["dagster_postgres"])
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    code = "import sys; from dagster._daemon.cli import main; sys.argv[0] = 'dagster-daemon'; sys.exit(main())"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [python, "-c", code, "run", "-w", workspace],
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        _stop(proc, signal.SIGTERM, timeout=30)


# --- the instance ------------------------------------------------------------------------------


def engine_dagster_yaml(
    pg_url: str | None = None,
    *,
    max_concurrent_runs: int = 4,
    run_launcher: Mapping[str, object] | None = None,
    pg_url_env: str | None = None,
) -> str:
    """The dagster.yaml of a multi-host instance: runs, events and schedules in PostgreSQL
    (dagster-postgres), the run queue (QueuedRunCoordinator, dequeued by `dagster-daemon run`)
    and, where given, a run launcher (e.g. {"module": "dagster_celery", "class":
    "CeleryRunLauncher", "config": {...}}); the default launcher starts each run's orchestrating
    process on the daemon's host, and the job's `celery` executor sends its steps to the workers.
    `pg_url_env`: write `{env: NAME}` instead of the URL (the file then holds no credentials; the
    variable must then hold the `postgresql+psycopg2://` form: see `sqlalchemy_url`)."""
    if (pg_url is None) == (pg_url_env is None):
        raise ValueError("give pg_url or pg_url_env")
    url = f"{{env: {pg_url_env}}}" if pg_url_env else _yaml_str(sqlalchemy_url(pg_url))
    lines = [
        "storage:",
        "  postgres:",
        f"    postgres_url: {url}",
        "run_coordinator:",
        "  module: dagster._core.run_coordinator",
        "  class: QueuedRunCoordinator",
        "  config:",
        f"    max_concurrent_runs: {int(max_concurrent_runs)}",
        "    dequeue_interval_seconds: 1",
        "telemetry:",
        "  enabled: false",
    ]
    if run_launcher:
        lines += ["run_launcher:", f"  module: {run_launcher['module']}", f"  class: {run_launcher['class']}"]
        config = run_launcher.get("config") or {}
        if config:
            lines.append("  config:")
            lines += [f"    {k}: {_yaml_str(v)}" for k, v in config.items()]
    return "\n".join(lines) + "\n"


def _yaml_str(value: object) -> str:
    import json

    return json.dumps(value) if isinstance(value, str) else str(value)
