"""Numbers derived from a trace or a layout, for people (NumPy and plain Python only: no torch, no UI).

Every number the app, the figures and the scripts show about a forward pass has its one definition here;
``viz/`` draws these numbers and ``pages/`` shows them.

* :mod:`~crossformer.analysis.attention` — softmax, entropy (nats), total variation, content-only / bias-only
  attention, member distances, one query's weights, maps, colour-scale tops and content/position split;
* :mod:`~crossformer.analysis.heads` — per-block head statistics (``trace_head_stats``: entropy, distance,
  DPB share, residual RMS; the on-device :func:`crossformer.stats_heads.head_stats` equals them) and odd heads;
* :mod:`~crossformer.analysis.rollout` — the group-aware attention rollout (a heuristic);
* :mod:`~crossformer.analysis.findings` — the thresholds (``UNIFORM``, ``ONE_KEY``, ``FLAT_BIAS``,
  ``SMALL_BIAS``, ``BIAS_DECIDES``), the informative picks, salience / class evidence / object token and the
  default query;
* :mod:`~crossformer.analysis.dataset` — per-head statistics over many images (a statistics CSV) summarised;
  :mod:`~crossformer.analysis.compare` — A − B differences of two traces' statistics and bias tables;
* :mod:`~crossformer.analysis.cost` — group attention against full attention, the per-stage table;
* :mod:`~crossformer.analysis.explain` — one attention weight recomputed step by step; the worst parity field;
* :mod:`~crossformer.analysis.tokens` — pixels ↔ tokens; :mod:`~crossformer.analysis.predictions` — top-k
  classes and the prediction's confidence;
* :mod:`~crossformer.analysis.facts` — sizes, intervals, spans and their one format;
  :mod:`~crossformer.analysis.pyramid` — PCA views of the feature pyramid.

Submodules are imported by name (``from crossformer.analysis import heads``); importing the package loads none.
"""

__all__ = ["attention", "compare", "cost", "dataset", "explain", "facts", "findings", "heads", "predictions",
           "pyramid", "rollout", "tokens"]
