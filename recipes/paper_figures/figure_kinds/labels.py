"""Labels the figures read from a saved explanation's metadata: the shared ones of :mod:`avxai.viz.labels`
(input names counted from 1, the attribution's label with units, the score and its target)."""

from __future__ import annotations

from avxai.viz.labels import attribution_label, input_labels, score_phrase, title_of, units_of

units = units_of

__all__ = ["units", "input_labels", "attribution_label", "score_phrase", "title_of"]
