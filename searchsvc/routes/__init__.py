"""The endpoints, one module per family, each a ``routes`` list of thin handlers.

``searchsvc.app`` puts the lists together. No route module imports another: what two of them
share lives below them (``searchsvc.selection``, ``searchsvc.engine_calls``, ``searchsvc.http``).
"""
