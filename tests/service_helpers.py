"""Helpers and fixtures for the service tests: a real index built by the CLI, a real server.

Nothing here imitates our own components: the index is built with ``python -m searchsvc index``
and the service runs as ``python -m searchsvc serve`` in a subprocess on a free loopback port,
driven over HTTP. Stopping a server sends SIGTERM and insists on a clean exit (status 0) within
the graceful-shutdown timeout, so every test that uses one also checks shutdown.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
GRACEFUL_TIMEOUT = 5  # seconds given to --timeout-graceful-shutdown in tests
START_TIMEOUT = 30.0
INDEX_TIMEOUT = 300.0

PORTAL_TEMPLATE = """Tin tức > {category}
{title}
Ngày đăng: {date} - Số lần xem: {views}

{body}

  • Nguồn: {source}
Phản hồi
"""


@dataclass(frozen=True)
class SampleArticle:
    stem: str
    category: str
    title: str
    date: str  # dd/mm/yyyy, the portal's form
    views: int
    paragraphs: tuple[str, ...]
    source: str = "Phóng viên"
    captions: tuple[str, ...] = ()

    def text(self) -> str:
        parts: list[str] = []
        for i, paragraph in enumerate(self.paragraphs):
            parts.append(paragraph)
            if i == 0:
                # A caption is a short line after two blank lines (where the portal removed an image).
                for caption in self.captions:
                    parts.append("\n" + caption)
        return PORTAL_TEMPLATE.format(
            category=self.category,
            title=self.title,
            date=self.date,
            views=self.views,
            body="\n\n".join(parts),
            source=self.source,
        )


DATA_DIR = Path(__file__).resolve().parent / "data"


def load_sample_articles(path: Path = DATA_DIR / "sample_articles.json") -> tuple[SampleArticle, ...]:
    """Articles from a JSON list of SampleArticle fields (``source`` and ``captions`` optional)."""
    records = json.loads(path.read_text(encoding="utf-8"))
    return tuple(
        SampleArticle(**{**r, "paragraphs": tuple(r["paragraphs"]), "captions": tuple(r.get("captions", ()))})
        for r in records
    )


# The corpus of the service tests, written out in the portal's format by write_corpus.
SAMPLE_ARTICLES = load_sample_articles()
# Its article with markup in the title and body: the tests check it stays inert everywhere.
XSS_TITLE = next(a.title for a in SAMPLE_ARTICLES if a.stem == "xa-hoi-canh-bao-2014")


def write_corpus(directory: Path, articles: Sequence[SampleArticle] = SAMPLE_ARTICLES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for article in articles:
        (directory / f"{article.stem}.txt").write_text(article.text(), encoding="utf-8")
    return directory


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment minus anything that would configure the child for us."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SEARCHSVC_") and k not in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")
    }
    env.update(extra)
    return env


def run_cli(
    *args: str, timeout: float = INDEX_TIMEOUT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m searchsvc ARGS``; a non-zero exit fails the test with the CLI's own output."""
    proc = subprocess.run(
        [sys.executable, "-m", "searchsvc", *args],
        cwd=REPO_ROOT,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        pytest.fail(f"searchsvc {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def build_index(paths: Sequence[Path], index_dir: Path) -> subprocess.CompletedProcess:
    return run_cli("index", *(str(p) for p in paths), "--index-dir", str(index_dir))


@contextlib.contextmanager
def serve_page(page: bytes, host: str = "127.0.0.1", path: str = "/") -> Iterator[str]:
    """A partner site: ``page`` as HTML at every path of a server on ``host`` (another origin than
    the service's); yields the URL of ``path``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}{path}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServiceProcess:
    """One ``searchsvc serve`` subprocess; ``stop`` checks that it shuts down cleanly."""

    index_dir: Path
    log_path: Path
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        self.port = self.port or free_port()
        args = [
            sys.executable, "-m", "searchsvc", "serve",
            "--index-dir", str(self.index_dir),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", str(self.workers),
            "--base-url", self.url,
            "--timeout-graceful-shutdown", str(GRACEFUL_TIMEOUT),
        ]  # fmt: skip
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            args, cwd=REPO_ROOT, env=clean_env(**self.env), stdout=self._log, stderr=subprocess.STDOUT
        )
        self.wait_for("/healthz")
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def wait_for(self, path: str, status: int = 200, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode} while starting:\n{self.log()[-4000:]}")
            try:
                response = httpx.get(self.url + path, timeout=2.0)
                if response.status_code == status:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        pytest.fail(f"{path} did not answer {status} within {timeout}s (last: {last}):\n{self.log()[-4000:]}")

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit status (killing it if it overstays)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=GRACEFUL_TIMEOUT + 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"server did not exit within {GRACEFUL_TIMEOUT + 10}s of SIGTERM:\n{self.log()[-4000:]}")
        self._log.close()
        return self.proc.returncode


@contextlib.contextmanager
def running_service(
    index_dir: Path, log_dir: Path, *, workers: int = 1, env: dict[str, str] | None = None, ready: bool = True
) -> Iterator[ServiceProcess]:
    """A started server; on exit SIGTERM and assert exit status 0 (a clean, graceful shutdown)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    service = ServiceProcess(index_dir, log_dir / f"server-{time.monotonic_ns()}.log", workers, dict(env or {}))
    service.start()
    try:
        if ready:
            service.wait_for("/readyz")
        yield service
    finally:
        code = service.stop()
        assert code == 0, f"server exited with {code} after SIGTERM:\n{service.log()[-4000:]}"


# --- fixtures (re-exported by tests/conftest.py) -------------------------------------------------


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def built_index(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("index") / "idx"
    build_index([corpus_dir], index_dir)
    return index_dir


@pytest.fixture(scope="session")
def service(built_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One server for the read-only tests of the session."""
    with running_service(built_index, tmp_path_factory.mktemp("logs")) as svc:
        yield svc


@pytest.fixture(scope="session")
def article_ids(service: ServiceProcess) -> dict[str, str]:
    """Sample stem -> the id the reader gave the article, looked up by title over the API."""
    hits = httpx.get(service.url + "/api/search", params={"per_page": 100}, timeout=30).json()["hits"]
    by_title = {hit["title"]: hit["id"] for hit in hits}
    return {a.stem: by_title[a.title] for a in SAMPLE_ARTICLES}


@pytest.fixture
def http(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30.0) as client:
        yield client


# --- headless Chromium ---------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def require_chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        pytest.skip("Debian chromium is not installed (run scripts/ensure_chromium.sh as root)")
    return path


def chromium(args: Sequence[str], user_data_dir: Path, timeout: float = 60.0) -> subprocess.CompletedProcess:
    binary = require_chromium()
    user_data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dump_dom(url: str, user_data_dir: Path) -> str:
    """The DOM after scripts ran, as Chromium serialises it."""
    proc = chromium(["--virtual-time-budget=3000", "--dump-dom", url], user_data_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class WebDriver:
    """The few W3C WebDriver commands the keyboard test needs, over plain HTTP (no selenium)."""

    ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"
    ARROW_DOWN = "\ue015"
    ARROW_UP = "\ue013"
    ENTER = "\ue007"
    ESCAPE = "\ue00c"
    TAB = "\ue004"

    def __init__(self, tmp: Path) -> None:
        binary = require_chromium()
        driver = CHROMEDRIVER if os.access(CHROMEDRIVER, os.X_OK) else shutil.which("chromedriver")
        if not driver:
            pytest.skip("Debian chromium-driver is not installed (run scripts/ensure_chromium.sh as root)")
        self.port = free_port()
        self._log = open(tmp / "chromedriver.log", "ab")
        self.proc = subprocess.Popen(
            [driver, f"--port={self.port}"], stdout=self._log, stderr=subprocess.STDOUT
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60.0)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.http.get("/status").json()["value"]["ready"]:
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.close()
                pytest.fail("chromedriver did not start")
            time.sleep(0.1)
        options = {"binary": binary, "args": [*CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'wd-profile'}"]}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        response = self.http.post("/session", json=caps).json()
        if "sessionId" not in response.get("value", {}):
            self.close()
            pytest.fail(f"chromedriver refused the session: {response}")
        self.session = response["value"]["sessionId"]

    def command(self, method: str, path: str, payload: dict | None = None) -> object:
        response = self.http.request(method, f"/session/{self.session}{path}", json=payload)
        value = response.json().get("value")
        if response.status_code >= 400:
            raise AssertionError(f"WebDriver {method} {path}: {value}")
        return value

    def get(self, url: str) -> None:
        self.command("POST", "/url", {"url": url})

    @property
    def current_url(self) -> str:
        return str(self.command("GET", "/url"))

    def find(self, css: str) -> str:
        value = self.command("POST", "/element", {"using": "css selector", "value": css})
        assert isinstance(value, dict)
        return value[self.ELEMENT_KEY]

    def send_keys(self, element: str, text: str) -> None:
        self.command("POST", f"/element/{element}/value", {"text": text})

    def script(self, source: str, *args: object) -> object:
        return self.command("POST", "/execute/sync", {"script": source, "args": list(args)})

    def async_script(self, source: str, *args: object, timeout: float = 60.0) -> object:
        """Run ``source``; its last argument is the callback that ends it with a value."""
        self.command("POST", "/timeouts", {"script": int(timeout * 1000)})
        return self.command("POST", "/execute/async", {"script": source, "args": list(args)})

    def press(self, *keys: str) -> None:
        """Real key presses (down, up) on whatever has focus, as a user types them."""
        steps = [step for key in keys for step in ({"type": "keyDown", "value": key}, {"type": "keyUp", "value": key})]
        self.command("POST", "/actions", {"actions": [{"type": "key", "id": "keyboard", "actions": steps}]})

    def computed(self, element: str) -> tuple[str, str]:
        """The element's role and accessible name as Chromium's accessibility tree computes them."""
        return str(self.command("GET", f"/element/{element}/computedrole")), str(
            self.command("GET", f"/element/{element}/computedlabel")
        )

    def wait_until(self, predicate_js: str, timeout: float = 10.0) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.script(predicate_js)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for: {predicate_js}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.http.delete(f"/session/{self.session}")
        self.http.close()
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            self.proc.kill()
        self._log.close()
