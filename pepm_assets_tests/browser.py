"""What the browser tests share: a free port, a web server started as a subprocess (waited for on its
HTTP port, its whole process group killed after), and a headless Chromium page (Playwright on the
system's chromium; `bash pepm_assets_tests/install_browser.sh` installs it).

Kept general: any test that serves a UI (Dagster, MLflow, the corpus explorer) and drives it uses it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

CHROMIUM_ENV = "PEPM_CHROMIUM"  # another chromium binary than the default ones
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
SHOTS_ENV = "PEPM_BROWSER_SHOTS"  # a folder where every screenshot is copied too (default /tmp/browser_shots)
TAIL_CHARS = 4000
# (signal, seconds to wait for the group to go): `dagster dev` logs its shutdown at once on SIGINT but a child lingers ~10 s
STOP_SIGNALS = ((signal.SIGINT, 3.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0))


def free_port() -> int:
    """A TCP port free on localhost now (the OS picks it; a server started right after gets it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium_path() -> str:
    """The chromium binary, or a failure saying how to install it: the browser tests never skip."""
    wanted = os.environ.get(CHROMIUM_ENV)
    for candidate in [wanted] if wanted else CHROMIUM_CANDIDATES:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found and not wanted:
        return found
    where = f"${CHROMIUM_ENV}={wanted}" if wanted else " or ".join(CHROMIUM_CANDIDATES)
    pytest.fail(f"no chromium at {where}: run `bash pepm_assets_tests/install_browser.sh` (as root, Debian) first", pytrace=False)


def _tail(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    return text[-TAIL_CHARS:] or "(empty)"


class Server:
    """A started server: its base URL, its process and the files its output goes to."""

    def __init__(self, url: str, process: subprocess.Popen, stdout: Path, stderr: Path) -> None:
        self.url = url
        self.process = process
        self.stdout = stdout
        self.stderr = stderr

    def tail(self) -> str:
        return f"stderr tail ({self.stderr}):\n{_tail(self.stderr)}\nstdout tail ({self.stdout}):\n{_tail(self.stdout)}"

    @contextlib.contextmanager
    def explained(self, what: str) -> Iterator[None]:
        """A Playwright wait that times out fails with what was awaited and the server's output
        tail (a code location that did not load says why there, not in the page)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            yield
        except (PlaywrightTimeout, AssertionError) as exc:
            pytest.fail(f"{what} ({self.url}): {str(exc).strip()[:2000]}\n{self.tail()}", pytrace=False)


def _answers(url: str) -> bool:
    """Whether an HTTP server answers at url (any status: a 404 still means it is up)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def serve(
    cmd: Sequence[str],
    port: int,
    logs: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    path: str = "/",
    timeout: float = 120.0,
    name: str | None = None,
    stop: Sequence[tuple[int, float]] = STOP_SIGNALS,
) -> Iterator[Server]:
    """Starts `cmd` (which serves HTTP on localhost:port) in its own process group, waits until
    http://127.0.0.1:port<path> answers, yields the Server, and always kills the whole group after:
    `dagster dev` and `mlflow ui` start children (code server, daemon, gunicorn workers) that would
    outlive their parent. A server that dies or is still silent after `timeout` seconds fails the
    test with the tail of its stderr and stdout (written under `logs`). `stop`: the signals sent to
    the group in turn, each with the seconds left to it to go."""
    name = name or Path(cmd[0]).name
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / f"{name}.stdout.txt", logs / f"{name}.stderr.txt"
    url = f"http://127.0.0.1:{port}"
    with open(out, "wb") as fout, open(err, "wb") as ferr:
        process = subprocess.Popen(
            list(cmd),
            stdout=fout,
            stderr=ferr,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    server = Server(url, process, out, err)
    try:
        deadline = time.monotonic() + timeout
        while not _answers(url + path):
            if process.poll() is not None:
                pytest.fail(
                    f"{name} exited with code {process.returncode} before serving {url + path}: {' '.join(cmd)}\n{server.tail()}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not serve {url + path} within {timeout:.0f}s: {' '.join(cmd)}\n{server.tail()}", pytrace=False)
            time.sleep(0.25)
        yield server
    finally:
        _kill_group(process, stop)


def _group_alive(pgid: int) -> bool:
    """Whether a live process is left in the group. Zombies do not count: where PID 1 does not reap
    orphans (some containers), a killed server's children stay <defunct> forever."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _kill_group(process: subprocess.Popen, stop: Sequence[tuple[int, float]] = STOP_SIGNALS) -> None:
    """SIGINT to the process group (`dagster dev` shuts its children down on it, not on SIGTERM),
    then SIGTERM, then SIGKILL to what is left (MLflow's job consumers ignore SIGINT)."""
    for sig, wait in stop:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(process.pid):
            process.poll()  # reaps our own child
            time.sleep(0.1)
        if not _group_alive(process.pid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=1)


@contextlib.contextmanager
def chromium(viewport: tuple[int, int] = (1400, 900)) -> Iterator:
    """A headless Chromium browser context (one per test module: starting chromium takes ~1 s)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(
            f"{exc}: install the `test` extra (pip install -e '.[test]') or run `bash pepm_assets_tests/install_browser.sh`", pytrace=False
        )
    executable = chromium_path()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            context.set_default_timeout(30_000)
            yield context
        finally:
            browser.close()


def shoot(page, dest: Path) -> Path:
    """A full-page screenshot at dest, copied into $PEPM_BROWSER_SHOTS (default /tmp/browser_shots)
    for a person to look at after the run."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(dest), full_page=True)
    shots = Path(os.environ.get(SHOTS_ENV) or "/tmp/browser_shots")
    shots.mkdir(parents=True, exist_ok=True)
    shutil.copy(dest, shots / dest.name)
    return dest


@pytest.fixture(scope="module")
def browser_context() -> Iterator:
    """One headless Chromium per test module (import this fixture and `page` into the module)."""
    with chromium() as context:
        yield context


@pytest.fixture()
def page(browser_context) -> Iterator:
    """A fresh tab of the module's browser, closed after the test."""
    tab = browser_context.new_page()
    try:
        yield tab
    finally:
        tab.close()
