"""The paper figures, one module per kind: extremal panels and area growth (:mod:`.extremal`), spectrogram
maps and the A-B-A time profiles (:mod:`.time_frequency`), face strips (:mod:`.face`), PCA-to-RGB images
(:mod:`.pca_rgb`), the method-benchmark table (:mod:`.benchmark`); the labels they share in :mod:`.labels`."""
