"""Building the index through the real CLI: upsert, delete, stats, bad input, --strict, --rebuild
killed half-way, and two runs at once."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from index import store
from index.api import SearchRequest
from index.article import Article
from index.engine import WhooshEngine

REPO = Path(__file__).resolve().parents[1]
PORTAL = """Tin tức > {category}
{title}
Ngày đăng: 27/06/2014 - Số lần xem: 12

{body}

  • Nguồn: Báo Test
Phản hồi
"""


def cli(*args: str, stdin: bytes | None = None, check: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "searchsvc", *args], input=stdin, capture_output=True,
                          env=env, cwd=REPO, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"searchsvc {' '.join(args)} failed: {proc.stderr.decode()}")
    return proc


def write_portal(path: Path, title: str, body: str, category: str = "Thời sự") -> Path:
    path.write_text(PORTAL.format(title=title, body=body, category=category), encoding="utf-8")
    return path


def search_ids(index_dir: Path, q: str) -> list[str]:
    with WhooshEngine.open(index_dir) as engine:
        return [h.article.id for h in engine.search(SearchRequest(q=q, per_page=100)).hits]


def stored_article(index_dir: Path, article_id: str) -> Article | None:
    with WhooshEngine.open(index_dir) as engine:
        return engine.get_article(article_id)


def test_index_search_stats_delete(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_portal(src / "a.txt", "Đắk Nông tổ chức hội nghị", "Sở Ngoại vụ tỉnh Đắk Nông tổ chức hội nghị.")
    write_portal(src / "b.txt", "Giá cà phê tăng", "Giá cà phê nhân xô tăng mạnh.", "Kinh tế")
    ix = tmp_path / "ix"
    out = cli("index", str(src), "--index-dir", str(ix), check=True)
    assert "read 2, indexed 2, updated 0, skipped 0" in out.stdout.decode()
    out = cli("search", "dak nong", "--index-dir", str(ix), "--json", check=True)
    data = json.loads(out.stdout)
    assert data["total"] == 1 and data["hits"][0]["id"] == "portal-a"
    out = cli("search", "--index-dir", str(ix), "--category", "kinh-te", check=True)
    assert "Giá cà phê tăng" in out.stdout.decode() and "Đắk Nông" not in out.stdout.decode()
    stats = json.loads(cli("stats", "--index-dir", str(ix), "--json", check=True).stdout)
    assert stats["articles"] == 2 and {c["slug"] for c in stats["categories"]} == {"thoi-su", "kinh-te"}
    assert cli("delete", "portal-b", "--index-dir", str(ix)).returncode == 0
    assert json.loads(cli("stats", "--index-dir", str(ix), "--json").stdout)["articles"] == 1
    assert cli("delete", "portal-nope", "--index-dir", str(ix)).returncode == 1


def test_reindexing_same_article_keeps_one_copy(tmp_path):
    src = tmp_path / "a.txt"
    write_portal(src, "Tin cũ về bão", "Bão số một đổ bộ.")
    ix = tmp_path / "ix"
    cli("index", str(src), "--index-dir", str(ix), check=True)
    write_portal(src, "Tin mới về bão", "Bão số một đổ bộ vào đất liền.")
    out = cli("index", str(src), "--index-dir", str(ix), check=True)
    assert "indexed 0, updated 1" in out.stdout.decode()
    assert search_ids(ix, "bão") == ["portal-a"]
    assert stored_article(ix, "portal-a").title == "Tin mới về bão"
    # The same id twice in one run (JSON Lines): one copy, the later one wins.
    lines = [json.dumps({"id": "x", "title": t, "body": "Nội dung bão.", "published": "2020-01-01", "category": "A"},
                        ensure_ascii=False) for t in ("Bản một", "Bản hai")]
    (tmp_path / "dup.jsonl").write_text("\n".join(lines), encoding="utf-8")
    cli("index", str(tmp_path / "dup.jsonl"), "--index-dir", str(ix), check=True)
    assert sorted(search_ids(ix, "bão")) == ["portal-a", "x"]
    assert stored_article(ix, "x").title == "Bản hai"
    # --rebuild with duplicates too
    dup = str(tmp_path / "dup.jsonl")
    cli("index", dup, dup, "--rebuild", "--index-dir", str(ix), check=True)
    assert search_ids(ix, "bão") == ["x"]


def test_bad_input_is_reported_and_skipped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_portal(src / "good.txt", "Tin tốt", "Nội dung tốt.")
    (src / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (src / "empty.txt").write_bytes(b"")
    (src / "truncated.txt").write_text("Tin tức > Thời sự\nChỉ có tiêu đề\n", encoding="utf-8")
    (src / "latin1.txt").write_bytes("Tin tức > Thời sự\nTiêu đề\n".encode().replace(b"\xe1", b"\xe0\xff"))
    (src / "bad.jsonl").write_text('{"id": "j1", "title": "T", "body": "B", "published": "2020-01-01"}\n{broken\n',
                                   encoding="utf-8")
    ix = tmp_path / "ix"
    out = cli("index", str(src), "--index-dir", str(ix))
    assert out.returncode == 0
    err = out.stderr.decode()
    for name in ("binary.txt", "empty.txt", "truncated.txt", "latin1.txt"):
        assert f"{src / name}" in err, f"{name} not reported:\n{err}"
    assert f"{src / 'bad.jsonl'}:2:" in err
    summary = out.stdout.decode()
    assert "read 7, indexed 2, updated 0, skipped 5" in summary  # read = indexed + updated + skipped
    assert sorted(search_ids(ix, "")) == ["j1", "portal-good"]
    assert cli("index", str(src), "--index-dir", str(ix), "--strict").returncode == 1


def _counts(summary: str) -> dict[str, int]:
    """{"read": 5, "indexed": 1, ...} from a summary line (the per-reason list left out)."""
    head = summary.split(" (")[0].split(";")[0]
    return {name: int(n) for name, n in (part.rsplit(" ", 1) for part in head.split(", "))}


def test_summary_adds_up_with_duplicate_ids(tmp_path):
    """Each item read is counted once: read = indexed + updated + duplicates + skipped. An id
    repeated in one run was counted as read three times but indexed once and updated once."""
    def record(id: str, title: str) -> str:
        return json.dumps({"id": id, "title": title, "body": "Nội dung.", "published": "2020-01-01"},
                          ensure_ascii=False)

    ix = tmp_path / "ix"
    first = tmp_path / "first.jsonl"
    first.write_text("\n".join([record("a", "A1"), record("a", "A2"), record("a", "A3")]) + "\n", encoding="utf-8")
    out = cli("index", str(first), "--index-dir", str(ix), check=True).stdout.decode()
    assert _counts(out) == {"read": 3, "indexed": 1, "updated": 0, "duplicates": 2, "skipped": 0}, out
    second = tmp_path / "second.jsonl"
    second.write_text("\n".join([record("a", "B1"), record("b", "B"), record("a", "B2"), "{broken",
                                  record("a", "B3")]) + "\n", encoding="utf-8")
    out = cli("index", str(second), "--index-dir", str(ix), check=True).stdout.decode()
    assert _counts(out) == {"read": 5, "indexed": 1, "updated": 1, "duplicates": 2, "skipped": 1}, out
    with WhooshEngine.open(ix) as engine:
        assert engine.doc_count == 2 and engine.get_article("a").title == "B3"


def test_reason_labels_in_the_summary_are_whole(tmp_path):
    """Labels are the reason without its details: "not UTF-8", not "not UTF-" (cut at the 8)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jsonl").write_bytes(
        b'{"id": "\xe0"}\n'
        b'{"id": "x", "title": "T", "body": "B", "published": "31/02/2014"}\n'
    )
    portal = "Tin tức > A\nTiêu đề\nNgày đăng: 01/02/2014\n\nThân bài.\n"
    (src / "b.txt").write_bytes(portal.encode("latin-1", "replace"))
    (src / "c.txt").write_text("Tin tức > A\nTiêu đề\nThân bài.\n", encoding="utf-8")
    (src / "d.jsonl").write_text('{"id": "v", "title": "T", "body": "B", "published": "2020-01-01", "views": -5}\n')
    out = cli("index", str(src), "--index-dir", str(tmp_path / "ix"))
    summary = out.stdout.decode().strip().splitlines()[-1]
    reasons = dict(part.rsplit(": ", 1) for part in summary.split(" (", 1)[1].rsplit(")", 1)[0].split("; "))
    assert reasons == {"not UTF-8": "1", "bad date": "1", "not UTF-8/UTF-16 text": "1",
                       "no date line after breadcrumb and title": "1", "bad views": "1"}, summary


def test_special_file_in_an_indexed_folder_does_not_block(tmp_path):
    """A FIFO in the folder blocked `searchsvc index` forever, holding the writer lock."""
    src = tmp_path / "src"
    src.mkdir()
    write_portal(src / "a.txt", "Tin tốt", "Nội dung tốt.")
    os.mkfifo(src / "b.jsonl")
    (src / "c.txt").symlink_to("/dev/zero")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "searchsvc", "index", str(src), "--index-dir", str(tmp_path / "ix")],
                          capture_output=True, env=env, cwd=REPO, timeout=30, check=False,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 32, 1 << 32)))
    assert proc.returncode == 0, proc.stderr.decode()
    err = proc.stderr.decode()
    assert f"{src / 'b.jsonl'}: not a regular file (FIFO)" in err
    assert f"{src / 'c.txt'}: not a regular file (character device)" in err
    assert "read 3, indexed 1, updated 0, skipped 2 (not a regular file: 2)" in proc.stdout.decode()


def test_stdin_and_missing_path(tmp_path):
    ix = tmp_path / "ix"
    line = json.dumps({"id": "s1", "title": "Từ stdin", "body": "Nội dung.", "published": "2020-01-01"}).encode()
    out = cli("index", "-", str(tmp_path / "nope.txt"), "--index-dir", str(ix), stdin=line)
    assert out.returncode == 0 and "nope.txt" in out.stderr.decode()
    assert search_ids(ix, "stdin") == ["s1"]


def _big_jsonl(path: Path, n: int, tag: str) -> Path:
    rng = random.Random(7)
    words = "hội nghị tổng kết công tác năm tỉnh Đắk Nông phát triển kinh tế xã hội văn hóa giáo dục y tế".split()
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            body = " ".join(rng.choice(words) for _ in range(400))
            f.write(json.dumps({"id": f"{tag}-{i}", "title": f"Bài {tag} số {i}", "body": body,
                                "published": "2020-01-01", "category": "Thời sự"}, ensure_ascii=False) + "\n")
    return path


def test_killed_rebuild_leaves_live_index_searchable(tmp_path):
    ix = tmp_path / "ix"
    small = tmp_path / "small.txt"
    write_portal(small, "Bài gốc", "Bài gốc duy nhất về thủy điện.")
    cli("index", str(small), "--index-dir", str(ix), check=True)
    live_before = store.current_generation(ix)
    big = _big_jsonl(tmp_path / "big.jsonl", 4000, "new")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "searchsvc", "index", str(big), "--rebuild", "--index-dir", str(ix),
                             "--quiet"], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # nothing reads its output: pipes would only stay open
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(store.generation_numbers(ix)) < 2:
        time.sleep(0.05)
    time.sleep(1.0)  # well into adding documents
    assert proc.poll() is None, "the rebuild finished before it could be killed; make the input bigger"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert store.current_generation(ix) == live_before
    assert search_ids(ix, "thuy dien") == ["portal-small"]
    assert search_ids(ix, "") == ["portal-small"]
    # The next run cleans the half-built generation and completes.
    out = cli("index", str(small), "--index-dir", str(ix), check=True)
    assert "updated 1" in out.stdout.decode()
    assert store.generation_numbers(ix) == [int(live_before.split("-")[1])]


def test_second_writer_waits_then_fails_clearly(tmp_path):
    ix = tmp_path / "ix"
    small = tmp_path / "small.txt"
    write_portal(small, "Bài gốc", "Nội dung.")
    cli("index", str(small), "--index-dir", str(ix), check=True)
    with store.writer_lock(ix):
        out = cli("index", str(small), "--index-dir", str(ix), "--wait", "1")
    assert out.returncode == 3
    assert "another 'searchsvc index' is writing" in out.stderr.decode()
    assert search_ids(ix, "") == ["portal-small"]
