"""Training data: synthetic captioned scenes, Noto emoji, and a folder of your own images.

Every dataset yields ``{"image": PIL RGB image, "caption": str, "h_div_w": float}``.
"""

from infinity.data.emoji import EmojiDataset
from infinity.data.folder import ImageFolderDataset
from infinity.data.scenes import (
    HELD_OUT_PAIRS, Scene, SceneDataset, SceneObject, SceneSpec, ObjectSpec,
    caption_scene, heldout_prompts, heldout_scenes, parse_caption, render_scene, sample_scene,
)

__all__ = [
    "EmojiDataset", "ImageFolderDataset", "SceneDataset", "Scene", "SceneObject", "SceneSpec",
    "ObjectSpec", "HELD_OUT_PAIRS", "sample_scene", "render_scene", "caption_scene", "parse_caption",
    "heldout_prompts", "heldout_scenes",
]
