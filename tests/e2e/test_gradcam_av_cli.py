"""``avxai explain --task av-enhancement --method gradcam`` on the bundled clip: one map per stream, each on its grid."""

import json

import pytest

from avxai.cli import main
from avxai.explanation import Explanation, split_explanation
from avxai.models.av_enhancement import DEFAULT_AV_ENHANCER_CHECKPOINT

ASSETS = DEFAULT_AV_ENHANCER_CHECKPOINT.parent
CLIP, CLEAN = ASSETS / "example.mp4", ASSETS / "clean.wav"

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_cli_gradcam_on_the_bundled_clip_explains_both_streams(tmp_path):
    out = tmp_path / "gradcam"
    code = main(["explain", "--task", "av-enhancement", "--input", str(CLIP), "--reference", str(CLEAN),
                 "--method", "gradcam", "--set", "layer={video: visual.trunk.3}", "--out", str(out), "--quiet"])
    assert code == 0 and (out / "frames.png").exists()
    meta = json.loads((out / "explanation.json").read_text())["metadata"]
    # the video layer as named (a MobileNetV3 block, per frame 8 x 8); the audio stream's default convolution
    assert meta["layers"] == {"audio": "audio.front.2", "video": "visual.trunk.3"}
    assert meta["activation_shape"]["video"] == [1, 24, 50, 8, 8]
    parts = split_explanation(Explanation.load(out))
    audio, video = parts["audio"].attribution[0], parts["video"].attribution[0]
    assert tuple(audio.shape) == (129, 201) and tuple(video.shape) == (50, 64, 64)
    assert float(audio.max()) == pytest.approx(1.0) and float(video.max()) == pytest.approx(1.0)
