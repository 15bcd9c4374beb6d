"""The audio-vs-video share of an audio-visual explanation's evidence, as one bar; or, when a masked score
sits at the silent-output floor of a dB scorer, a line saying why no share is shown (it would measure the
floor, not the model)."""

from __future__ import annotations

import numpy as np

from avxai.viz.style import OKABE_ITO, legend_right

__all__ = ["plot_shares", "shares_at_floor", "FLOOR_DB"]

#: a dB score at or below this is the silent-output floor of SDR scorers (clamped at -100 dB), not the model
FLOOR_DB = -99.0


def shares_at_floor(shares: dict) -> bool:
    """Whether the audio-vs-video shares rest on a silent output: a masked score at the dB scorer's floor."""
    if "db" not in str(shares.get("units", "")).lower():
        return False
    masked = [float(np.ravel(shares[k])[0]) for k in ("audio_masked", "video_masked", "both_masked") if k in shares]
    return any(v <= FLOOR_DB for v in masked)


def plot_shares(ax, shares: dict, title: str = "audio vs video") -> bool:
    """The audio and video shares of the evidence (:meth:`ModalityShares.as_dict`) as one stacked bar with
    the four scores behind them; or, when a masked score sits at the silent-output floor (the share would
    come from the floor, not from the model), a line saying so. Returns whether the bar was drawn."""
    first = lambda k: float(np.ravel(shares[k])[0])  # noqa: E731
    units = shares.get("units", "")
    scores = (f"unmasked {first('unmasked'):.1f}, audio masked {first('audio_masked'):.1f}, video masked "
              f"{first('video_masked'):.1f}, both masked {first('both_masked'):.1f} {units}")
    if shares_at_floor(shares):
        ax.axis("off")
        ax.text(0.0, 0.5, f"{title}: not shown. Masking the audio silences the output, so its score sits at the "
                f"scorer's floor (-100 dB, lower with a\nlevel-aware score's penalty) and a share would measure that floor, "
                f"not the model.\nScores: {scores}.",
                transform=ax.transAxes, ha="left", va="center", fontsize=7)
        return False
    a_share, v_share = first("audio_share"), first("video_share")
    left = 0.0
    for share, colour, name in ((a_share, OKABE_ITO[5], "audio"), (v_share, OKABE_ITO[1], "video")):
        width = max(share, 0.0)
        ax.barh([0], [width], left=left, color=colour, height=0.8, label=f"{name} {100 * share:.0f} %")
        left += width
    ax.set_xlim(0, max(1.0, left))
    ax.set_yticks([])
    legend_right(ax)
    ax.set_xlabel("share of the evidence (Shapley values of the two streams, fraction)")
    ax.set_title(f"{title}: {scores}", loc="left")
    return True
