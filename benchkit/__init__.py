"""What the benchmark, evaluation and fault scripts under ``scripts/`` share.

``scripts/`` holds entry points only (each one a ``main``); every piece of code that more than one
of them, or a test, needs lives here, so that nothing patches ``sys.path`` to find a sibling
script. The project installs this package with the others (editable, see ``scripts/_venv.sh``);
it is used from a checkout: ``benchkit.corpus.REPO_ROOT`` is this package's parent directory.

* ``corpus``: where the shared corpus and the benchmarks' index live, and reading the corpus;
* ``report``: the one percentile rule and what every benchmark prints about its conditions
  (date, load average, code measured);
* ``engine``: the search engine opened for measuring (its result cache off);
* ``procinfo``: child processes from ``/proc``, a free loopback port, a SIGTERM-then-kill stop;
* ``fts5``: the SQLite FTS5 baseline;
* ``queries``: the deterministic known-item query generator;
* ``wrk``: running the service and bare ceilings under wrk; ``apps``: those bare Starlette apps.
"""
