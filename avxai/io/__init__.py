"""Audio and video files."""

from avxai.io.audio import load_audio, resample, save_audio
from avxai.io.video import VideoClip, check_av_alignment, read_video, write_video

__all__ = ["load_audio", "resample", "save_audio", "VideoClip", "check_av_alignment", "read_video", "write_video"]
