"""Admission control of expensive work (``searchsvc.admission``): the queue bound, the deadline, the
early refusal, tokens given back whatever happens; its settings; and a real server under a burst of
distinct searches: some refused with ``503 overloaded`` (JSON or the Vietnamese page, with
``Retry-After``), counted in ``/metrics``, while cheap routes keep answering and nothing is a 500.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx
import pytest
from service_helpers import running_service

from searchsvc.admission import SHED_DEADLINE, SHED_QUEUE, Admission, Overloaded
from searchsvc.config import DEFAULT_ADMISSION_DEADLINE, DEFAULT_ADMISSION_QUEUE, Config, ConfigError
from searchsvc.errors import ErrorCode
from searchsvc.metrics import SHED_REASONS, Metrics

# --- Admission, in process --------------------------------------------------------------------------


class Blocker:
    """Work for an engine thread that runs until ``release()`` (``started`` says it runs)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self._release = threading.Event()

    def __call__(self) -> str:
        self.started.set()
        assert self._release.wait(30), "never released"
        return "done"

    def release(self) -> None:
        self._release.set()

    async def wait_started(self) -> None:
        with anyio.fail_after(10):
            while not self.started.is_set():
                await anyio.sleep(0.005)


def run(test: Callable[[], Awaitable[None]]) -> None:
    anyio.run(test)


class Recorder:
    def __init__(self) -> None:
        self.shed: list[str] = []
        self.waits: list[float] = []

    def admission(self, threads: int, queue: int, deadline: float) -> Admission:
        return Admission(threads, queue, deadline, on_shed=self.shed.append, on_wait=self.waits.append)


async def until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not predicate():
            await anyio.sleep(0.005)


def test_a_free_thread_runs_at_once_and_the_wait_is_recorded() -> None:
    rec = Recorder()
    admission = rec.admission(threads=2, queue=0, deadline=1.0)

    async def test() -> None:
        assert await admission.run_sync(lambda: 6 * 7) == 42
        assert (admission.running, admission.waiting, rec.shed, rec.waits) == (0, 0, [], [0.0])
        assert admission.service_time >= 0

    run(test)


def test_the_queue_bound_refuses_at_once_and_the_admitted_all_run() -> None:
    rec = Recorder()
    admission = rec.admission(threads=1, queue=2, deadline=0)  # no deadline: only the queue bounds
    blocker = Blocker()
    results: list[object] = []

    async def test() -> None:
        async with anyio.create_task_group() as tg:
            async def call(fn: Callable[[], object]) -> None:
                results.append(await admission.run_sync(fn))

            tg.start_soon(call, blocker)
            await blocker.wait_started()
            tg.start_soon(call, lambda: "second")
            tg.start_soon(call, lambda: "third")
            await until(lambda: admission.waiting == 2)
            started = time.monotonic()
            with pytest.raises(Overloaded) as refused:
                await admission.run_sync(lambda: "fourth")
            assert time.monotonic() - started < 0.5  # at once: no wait to be refused
            assert (refused.value.reason, refused.value.status, refused.value.code) == (SHED_QUEUE, 503,
                                                                                        ErrorCode.OVERLOADED)
            assert int(refused.value.headers["Retry-After"]) >= 1
            assert "2 requests are already waiting" in refused.value.message
            blocker.release()
        assert results == ["done", "second", "third"]  # FIFO
        assert (admission.running, admission.waiting, rec.shed) == (0, 0, [SHED_QUEUE])
        assert len(rec.waits) == 3 and rec.waits[0] == 0.0 and min(rec.waits[1:]) > 0

    run(test)


def test_a_waiter_gives_up_at_the_deadline_and_holds_no_token() -> None:
    rec = Recorder()
    admission = rec.admission(threads=1, queue=10, deadline=0.3)
    blocker = Blocker()

    async def test() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(admission.run_sync, blocker)
            await blocker.wait_started()
            started = time.monotonic()
            with pytest.raises(Overloaded) as refused:
                await admission.run_sync(lambda: "late")
            waited = time.monotonic() - started
            assert 0.25 <= waited < 2.0, waited  # the whole budget (no run time known yet): 0.3 s
            assert refused.value.reason == SHED_DEADLINE
            assert admission.waiting == 0
            blocker.release()
        assert await admission.run_sync(lambda: "next") == "next"  # the token went back
        assert (admission.running, rec.shed) == (0, [SHED_DEADLINE])

    run(test)


def test_a_predicted_wait_past_the_deadline_is_refused_at_once() -> None:
    """With runs of ~2 s, one thread and a 5 s deadline: the first in line may wait (2 s predicted,
    3 s of budget), the second would wait ~4 s and is refused without waiting at all."""
    rec = Recorder()
    admission = rec.admission(threads=1, queue=10, deadline=5.0)
    for _ in range(3):
        admission.learn(2.0)
    assert admission.service_time == pytest.approx(2.0)
    assert admission.predicted_wait(0) == pytest.approx(2.0) and admission.predicted_wait(1) == pytest.approx(4.0)
    blocker = Blocker()

    async def test() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(admission.run_sync, blocker)
            await blocker.wait_started()
            tg.start_soon(admission.run_sync, lambda: "first in line")
            await until(lambda: admission.waiting == 1)
            started = time.monotonic()
            with pytest.raises(Overloaded) as refused:
                await admission.run_sync(lambda: "second in line")
            assert time.monotonic() - started < 0.5
            assert refused.value.reason == SHED_DEADLINE
            assert refused.value.retry_after == 4  # the line it saw: ~4 s to drain
            assert refused.value.headers == {"Retry-After": "4"}
            blocker.release()
        assert (admission.waiting, admission.running, rec.shed) == (0, 0, [SHED_DEADLINE])

    run(test)


def test_a_free_thread_runs_even_when_runs_take_longer_than_the_deadline() -> None:
    admission = Admission(1, 0, 0.1)
    admission.learn(5.0)

    async def test() -> None:
        assert await admission.run_sync(lambda: "ran") == "ran"  # refusing it would help no one

    run(test)


def test_tokens_are_given_back_when_the_work_fails() -> None:
    admission = Admission(1, 0, 1.0)  # a token kept would turn every later call into a refusal

    def fail() -> None:
        raise ValueError("boom")

    async def test() -> None:
        for _ in range(3):
            with pytest.raises(ValueError, match="boom"):
                await admission.run_sync(fail)
            assert admission.running == 0
        assert await admission.run_sync(lambda: "fine") == "fine"

    run(test)


def test_a_cancelled_waiter_leaves_the_line_and_a_cancelled_run_finishes_first() -> None:
    admission = Admission(1, 5, 0)
    blocker = Blocker()

    async def test() -> None:
        run_scope = anyio.CancelScope()

        async def caller() -> None:
            with run_scope:
                await admission.run_sync(blocker)

        async with anyio.create_task_group() as outer:
            outer.start_soon(caller)
            await blocker.wait_started()
            async with anyio.create_task_group() as tg:
                tg.start_soon(admission.run_sync, lambda: "never")
                await until(lambda: admission.waiting == 1)
                tg.cancel_scope.cancel()  # the waiter goes...
            assert (admission.waiting, admission.running) == (0, 1)  # ...and leaves the line
            run_scope.cancel()  # the caller of the run goes: its thread still runs...
            await anyio.sleep(0.05)
            assert admission.running == 1  # ...and holds its slot (it cannot be interrupted)
            blocker.release()
        assert (admission.waiting, admission.running) == (0, 0)
        assert await admission.run_sync(lambda: "again") == "again"

    run(test)


def test_cheap_work_does_not_wait_for_a_saturated_admission() -> None:
    """Cheap lookups use anyio's default pool, never the engine threads: they answer while every
    engine thread is busy and expensive work is being refused."""
    admission = Admission(1, 0, 1.0)
    blocker = Blocker()

    async def test() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(admission.run_sync, blocker)
            await blocker.wait_started()
            with pytest.raises(Overloaded):
                await admission.run_sync(lambda: "expensive")
            with anyio.fail_after(5):
                assert await anyio.to_thread.run_sync(lambda: "cheap") == "cheap"
            blocker.release()

    run(test)


def test_the_service_time_is_a_moving_mean() -> None:
    admission = Admission(2, 1, 1.0)
    assert admission.service_time == 0 and admission.predicted_wait(3) == 0  # nothing known: no prediction
    admission.learn(1.0)
    assert admission.service_time == 1.0
    admission.learn(0.0)
    assert admission.service_time == pytest.approx(0.9)
    assert admission.predicted_wait(1) == pytest.approx(0.9)  # 2 in line, 2 threads
    assert admission.retry_after(0) == 1 and admission.retry_after(1000) == 30


@pytest.mark.parametrize("args", [(0, 1, 1.0), (1, -1, 1.0), (1, 1, -1.0), (1, 1, float("inf")), (1, 1, float("nan"))])
def test_bad_bounds_are_refused(args: tuple[int, int, float]) -> None:
    with pytest.raises(ValueError):
        Admission(*args)


# --- settings and metrics ---------------------------------------------------------------------------


def test_settings_defaults_and_the_per_worker_share() -> None:
    config = Config.from_env(environ={})
    assert (config.admission_queue, config.admission_deadline) == (DEFAULT_ADMISSION_QUEUE, DEFAULT_ADMISSION_DEADLINE)
    assert config.admission_queue_per_worker == DEFAULT_ADMISSION_QUEUE  # one worker: all of it
    env = {"SEARCHSVC_ADMISSION_QUEUE": "5", "SEARCHSVC_ADMISSION_DEADLINE": "0.5", "SEARCHSVC_WORKERS": "2"}
    config = Config.from_env(environ=env)
    assert (config.admission_queue, config.admission_deadline, config.admission_queue_per_worker) == (5, 0.5, 2)
    assert Config.from_env(environ=config.to_env()) == config  # what the workers read back
    assert Config(admission_queue=1, workers=4).admission_queue_per_worker == 1  # at least one each
    assert Config(admission_queue=0, workers=4).admission_queue_per_worker == 0  # 0: nobody waits
    assert Config.from_env(environ={"SEARCHSVC_ADMISSION_DEADLINE": "0"}).admission_deadline == 0  # off


@pytest.mark.parametrize("env", [
    {"SEARCHSVC_ADMISSION_QUEUE": "-1"},
    {"SEARCHSVC_ADMISSION_QUEUE": "many"},
    {"SEARCHSVC_ADMISSION_DEADLINE": "-0.5"},
    {"SEARCHSVC_ADMISSION_DEADLINE": "soon"},
    {"SEARCHSVC_ADMISSION_DEADLINE": "nan"},
    {"SEARCHSVC_ADMISSION_DEADLINE": "inf"},
    {"SEARCHSVC_ADMISSION_DEADLINE": "86400"},
])  # fmt: skip
def test_bad_settings_name_their_variable(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(env))):
        Config.from_env(environ=env)


def test_the_shed_counter_has_a_fixed_set_of_reasons() -> None:
    assert set(SHED_REASONS) == {SHED_QUEUE, SHED_DEADLINE}
    metrics = Metrics()
    metrics.shed(SHED_QUEUE)
    with pytest.raises(ValueError):
        metrics.shed("whatever a client sent")
    text = metrics.render().decode()
    assert 'searchsvc_admission_shed_total{reason="queue"} 1.0' in text
    assert 'searchsvc_admission_shed_total{reason="deadline"} 0.0' in text  # there from the start


# --- a real server under a burst ----------------------------------------------------------------------

CLIENTS = 32  # each sends distinct searches back to back: far more than 1 thread and 2 places in line
BURST_SECONDS = 2.0
SHED_LINE = re.compile(r'^searchsvc_admission_shed_total\{reason="(\w+)"\} ([\d.]+)$', re.M)


def test_a_burst_of_distinct_searches_is_shed_and_cheap_routes_keep_answering(built_index: Path,
                                                                               tmp_path: Path) -> None:
    env = {"SEARCHSVC_ENGINE_THREADS": "1", "SEARCHSVC_ADMISSION_QUEUE": "2", "SEARCHSVC_ADMISSION_DEADLINE": "0.5"}
    with running_service(built_index, tmp_path / "logs", env=env) as svc:
        statuses, api_refusals, page_refusals, probes = asyncio.run(burst(svc.url))
        metrics = httpx.get(svc.url + "/metrics", timeout=10).text
    assert set(statuses) <= {200, 503}, statuses  # refused or answered: never a 500, never anything else
    assert statuses.count(200) >= 1
    assert api_refusals and page_refusals, statuses
    for response in api_refusals:
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]["code"] == "overloaded", response.text
        assert int(response.headers["retry-after"]) >= 1
    for response in page_refusals:
        assert response.headers["content-type"].startswith("text/html")
        assert "<code>overloaded</code>" in response.text
        assert "Máy chủ đang quá tải, vui lòng thử lại sau ít giây." in response.text
        assert int(response.headers["retry-after"]) >= 1
    # /healthz and an article page, all along: never refused (and answered, not replayed: see burst)
    assert len(probes) >= 2 and all(status == 200 for _, status in probes), probes
    assert probes.count(("whole", 200)) + probes.count(("without related", 200)) >= 1, probes
    shed = {reason: float(value) for reason, value in SHED_LINE.findall(metrics)}
    assert set(shed) == set(SHED_REASONS), metrics
    # Every refusal counted: the searches' 503s, and the related lists of the article pages answered
    # without them.
    degraded = probes.count(("without related", 200))
    assert sum(shed.values()) == statuses.count(503) + degraded, (shed, statuses.count(503), degraded)


async def burst(url: str) -> tuple[list[int], list[httpx.Response], list[httpx.Response], list[tuple[str, int]]]:
    """``CLIENTS`` connections sending distinct searches (API and page in turn, never one twice) for
    ``BURST_SECONDS``, and a probe of cheap routes all along: (statuses, API 503s, page 503s,
    (probe path, status))."""
    limits = httpx.Limits(max_connections=CLIENTS + 4, max_keepalive_connections=CLIENTS + 4)
    statuses: list[int] = []
    api: list[httpx.Response] = []
    pages: list[httpx.Response] = []
    probes: list[tuple[str, int]] = []
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        article_id = (await client.get("/api/search", params={"per_page": 1})).json()["hits"][0]["id"]
        end = time.monotonic() + BURST_SECONDS

        async def searcher(n: int) -> None:
            i = 0
            while time.monotonic() < end:
                i += 1
                path = "/api/search" if i % 2 else "/search"
                response = await client.get(path, params={"q": f"bóng đá hà nội {n} kinh tế {i}"})
                statuses.append(response.status_code)
                if response.status_code == 503:
                    (api if path.startswith("/api/") else pages).append(response)
                    await asyncio.sleep(0.05)  # a little: a flood of instant refusals is not the point

        async def probe() -> None:
            n = 0
            while time.monotonic() < end:
                n += 1
                # A new q each time: the article page is computed (a cheap lookup), not replayed.
                for path in ("/healthz", f"/articles/{article_id}?q=probe{n}"):
                    response = await client.get(path)
                    probes.append((path, response.status_code))
                    if path.startswith("/articles/") and response.status_code == 200:
                        # The page keeps its related list, or was answered without it (the engine
                        # threads were full) and then no cache may keep it.
                        whole = "Bài liên quan" in response.text
                        assert whole or response.headers["cache-control"] == "no-store", response.headers
                        probes.append(("whole" if whole else "without related", 200))

        await asyncio.gather(probe(), *(searcher(n) for n in range(CLIENTS)))
    print(f"{len(statuses)} searches: {statuses.count(200)} x 200, {statuses.count(503)} x 503; {len(probes)} probes")
    return statuses, api, pages, probes


def test_the_wait_budget_leaves_room_for_the_slower_runs() -> None:
    """The budget subtracts what the slower runs take (95th percentile of the recent ones), not
    the mean: otherwise an admitted request whose run is slower than most ends past the deadline."""
    admission = Admission(1, 10, 2.0)
    for seconds in [0.1] * 8 + [1.0, 1.2]:
        admission.learn(seconds)
    assert admission.service_time < 0.4 and admission.slow_time == pytest.approx(1.2)
    blocker = Blocker()

    async def test() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(admission.run_sync, blocker)
            await blocker.wait_started()
            started = time.monotonic()
            with pytest.raises(Overloaded):
                await admission.run_sync(lambda: "waits")
            waited = time.monotonic() - started
            assert 0.5 <= waited < 1.2, waited  # 2.0 x 0.95 - 1.2 s of budget, not 2.0 - the mean
            blocker.release()

    run(test)
