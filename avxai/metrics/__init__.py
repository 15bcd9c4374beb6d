"""How good is an explanation: faithfulness curves, localisation against a known truth, sanity checks,
and how much each stream of an audio-visual input carries."""

from avxai.metrics.faithfulness import (
    FaithfulnessCurve, deletion_curve, faithfulness_curve, insertion_curve, ranked_masks, trapezoid_auc,
)
from avxai.metrics.ground_truth import dilate, iou_at_truth_area, mass_in_mask, pointing_game
from avxai.metrics.sanity import RandomisationResult, parameter_layers, randomisation_check, reinitialise
from avxai.metrics.masks import (
    chance_iou, compare_with_ibm, energy_share, ibm_on_grid, ideal_binary_mask, map_at_area, mask_iou, mask_scores,
    preserve_delete_scores,
)
from avxai.metrics.localisation import frames_in_segments, mass_in_segments
from avxai.metrics.shares import ModalityShares, modality_shares
from avxai.metrics.verification import det_curve, eer, min_dcf
from avxai.metrics.interpretability import interpretability_metrics, speechbrain_metrics
from avxai.metrics.time_auc import speaker_localisation_auc, time_annotation_auc
