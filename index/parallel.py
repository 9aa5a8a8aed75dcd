"""A Whoosh multiprocess writer for builds: one segment per writer process, or a new one every N
documents (``SEARCHSVC_SEGMENT_DOCS``), each written by ``index.build_writer.BuildSegmentWriter``.

Why segments every N documents were offered: Whoosh's own pool pickled every posting to runs past
``limitmb`` and merged them back one at a time, so a large segment cost far more CPU than several
small ones. The build writer's pool spills whole terms instead, and that reason is gone (one
segment per process is the default, and the faster index to search).

It also refuses to commit when a writer process did not report back (Whoosh's own MpWriter commits
without the missing segment, silently losing its documents).
"""

from __future__ import annotations

import pickle
import queue
from typing import Any

from whoosh.multiproc import MpWriter, SubWriterTask

from index.build_writer import BuildSegmentWriter


class _SegmentingTask(SubWriterTask):  # type: ignore[misc]  # Whoosh's classes are untyped (mypy skips whoosh.*)
    segment_docs = 3000

    def run(self) -> None:
        ix = self.storage.open_index(self.indexname)
        segments = []
        writer = self.writer = BuildSegmentWriter(ix, _lk=False, **self.kwargs)
        count = 0
        while self.running:
            jobinfo = self.jobqueue.get()
            if jobinfo is None:
                break
            filename, doc_count = jobinfo
            tempstorage = writer.temp_storage()
            with tempstorage.open_file(filename).raw_file() as f:
                for _ in range(doc_count):
                    code, args = pickle.load(f)
                    writer.add_document(**args)
            tempstorage.delete_file(filename)
            count += doc_count
            if count >= self.segment_docs:
                segments.append(writer._finalize_segment())
                writer = self.writer = BuildSegmentWriter(ix, _lk=False, **self.kwargs)
                count = 0
        if not self.running:
            writer.cancel()
            return
        if count:
            segments.append(writer._finalize_segment())
        else:
            writer._close_segment()  # its empty files are removed when the parent commits
        self.resultqueue.put((None, None, segments), timeout=30)


class SegmentingMpWriter(MpWriter):  # type: ignore[misc]  # Whoosh's classes are untyped (mypy skips whoosh.*)
    """``MpWriter(multisegment=True)`` with a new segment every ``segment_docs`` documents."""

    def __init__(self, ix: Any, procs: int, segment_docs: int, **kwargs: Any) -> None:
        super().__init__(ix, procs=procs, multisegment=True, **kwargs)
        self.segment_docs = segment_docs

    def _new_task(self) -> _SegmentingTask:
        task = _SegmentingTask(self.storage, self.indexname, self.jobqueue, self.resultqueue, self.subargs, True)
        task.segment_docs = self.segment_docs
        self.tasks.append(task)
        task.start()
        return task

    def _commit(self, mergetype: Any, optimize: bool, merge: bool) -> None:
        if self.docbuffer:
            self._enqueue()
        for _ in self.tasks:
            self.jobqueue.put(None)
        finalsegments = self._merge_segments(mergetype, optimize, merge)
        results: list[tuple[Any, Any, list[Any]]] = []
        # Read before joining (a child exits only once its result has left the queue), and stop
        # waiting as soon as a child has died without reporting.
        while len(results) < len(self.tasks):
            try:
                results.append(self.resultqueue.get(timeout=1))
            except queue.Empty:
                if any(not t.is_alive() and t.exitcode not in (0, None) for t in self.tasks):
                    break
                if all(not t.is_alive() for t in self.tasks):
                    try:
                        results.append(self.resultqueue.get(timeout=1))
                    except queue.Empty:
                        break
        for task in self.tasks:
            task.join()
        failed = [t for t in self.tasks if t.exitcode != 0]
        if failed or len(results) != len(self.tasks):
            raise RuntimeError(
                f"{len(failed) or len(self.tasks) - len(results)} index writer process(es) failed; "
                "nothing was committed"
            )
        for _, _, segments in results:
            finalsegments += segments
        if self._added:
            finalsegments.append(self._finalize_segment())
        else:
            self._close_segment()
        self._commit_toc(finalsegments)
        self._finish()
