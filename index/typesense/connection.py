"""Where the cluster is and how we talk to it: settings from the environment, and two clients.

Settings: ``SEARCHSVC_TYPESENSE_NODES`` (comma-separated URLs, every node of the cluster),
``SEARCHSVC_TYPESENSE_API_KEY`` or ``SEARCHSVC_TYPESENSE_API_KEY_FILE`` (a file holding the key:
keeps it out of process listings), ``SEARCHSVC_TYPESENSE_PREFIX`` (collection names, default
``searchsvc``: several archives can share a cluster).

Two clients, because of what was measured on a 3-node cluster (docs/scale-out.md): while the
cluster elects a new leader (about 9 s here after the leader is killed), writes answer 500 on
every node, and the official client then marks each node unhealthy, so reads sharing that client
failed too (29 of 90 in the probe) though every follower kept answering them. The read client
retries another node at once and gives up quickly (a reader is waiting); the write client waits
the election out.

The names, all under the prefix:

* ``{prefix}_articles``: the alias the readers search; it points at ``{prefix}_articles_{stamp}``,
  and ``--rebuild`` fills a new target and swaps the alias (``index.typesense.writer``);
* ``{prefix}_meta``: one document, ``state``: the commit counter (``seq``), the alias target it
  belongs to, the category labels. ``{target}.{seq}`` is the generation token serve nodes key
  their caches on;
* ``{prefix}_changes``: one document per commit: the ids and categories it touched
  (``SearchEngine.changes_between``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import typesense
from typesense.configuration import NodeConfigDict

from index.api import SettingError

DEFAULT_PREFIX = "searchsvc"
READ_TIMEOUT = 2.0  # seconds per attempt on one node
WRITE_TIMEOUT = 30.0  # an import of one batch, forwarded to the leader
WRITE_RETRIES = 60  # x 0.5 s: a leader election (about 9 s measured) with room to spare


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    nodes: tuple[str, ...]
    api_key: str
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClusterSettings:
        """The settings from ``SEARCHSVC_TYPESENSE_*``; ``SettingError`` names what is wrong."""
        env = os.environ if env is None else env
        raw = env.get("SEARCHSVC_TYPESENSE_NODES", "").strip()
        if not raw:
            raise SettingError("SEARCHSVC_TYPESENSE_NODES is not set: the Typesense nodes' URLs, comma-separated")
        nodes = tuple(n.strip().rstrip("/") for n in raw.split(",") if n.strip())
        for node in nodes:
            parts = urlsplit(node)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise SettingError(f"SEARCHSVC_TYPESENSE_NODES: {node!r} is not a node URL like http://10.0.0.5:8108")
        key = env.get("SEARCHSVC_TYPESENSE_API_KEY", "").strip()
        key_file = env.get("SEARCHSVC_TYPESENSE_API_KEY_FILE", "").strip()
        if not key and key_file:
            try:
                key = Path(key_file).expanduser().read_text(encoding="utf-8").strip()
            except OSError as e:
                raise SettingError(f"SEARCHSVC_TYPESENSE_API_KEY_FILE: cannot read {key_file}: {e.strerror}") from e
        if not key:
            raise SettingError("SEARCHSVC_TYPESENSE_API_KEY (or SEARCHSVC_TYPESENSE_API_KEY_FILE) is not set")
        prefix = env.get("SEARCHSVC_TYPESENSE_PREFIX", DEFAULT_PREFIX).strip() or DEFAULT_PREFIX
        if not prefix.replace("_", "").isalnum() or not prefix.isascii():
            raise SettingError(f"SEARCHSVC_TYPESENSE_PREFIX must be ASCII letters, digits and '_', not {prefix!r}")
        return cls(nodes, key, prefix)

    @property
    def alias(self) -> str:
        return f"{self.prefix}_articles"

    @property
    def meta(self) -> str:
        return f"{self.prefix}_meta"

    @property
    def changes(self) -> str:
        return f"{self.prefix}_changes"


def _node(url: str) -> str | NodeConfigDict:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {"host": parts.hostname or "", "port": port, "protocol": parts.scheme}


def read_client(settings: ClusterSettings) -> typesense.Client:
    """A client for searches and reads: any node answers; a failed node is skipped at once."""
    return typesense.Client({
        "nodes": [_node(n) for n in settings.nodes],
        "api_key": settings.api_key,
        "connection_timeout_seconds": READ_TIMEOUT,
        "num_retries": 2 * len(settings.nodes),
        "retry_interval_seconds": 0.01,
        "healthcheck_interval_seconds": 2,
    })


def write_client(settings: ClusterSettings) -> typesense.Client:
    """A client for writes: waits out a leader election (``WRITE_RETRIES``)."""
    return typesense.Client({
        "nodes": [_node(n) for n in settings.nodes],
        "api_key": settings.api_key,
        "connection_timeout_seconds": WRITE_TIMEOUT,
        "num_retries": WRITE_RETRIES,
        "retry_interval_seconds": 0.5,
        "healthcheck_interval_seconds": 1,
    })
