"""The HDF5 contract (DESIGN §4), as constants other modules import instead of spelling names again.

`validate(path)` (in this module) checks a file against every rule and returns a list of problems.
"""
from __future__ import annotations

FORMAT = "ckpp"
SCHEMA_VERSION = 1

#: root attributes every master file carries
ROOT_ATTRS = ("format", "schema_version", "ckpp_version", "image_size", "landmark_backend", "created", "config")

MANIFEST = "manifest"
CLIPS = "clips"
#: manifest columns, in order; strings are UTF-8 variable length, numbers int
MANIFEST_STR_COLUMNS = ("clip_id", "source", "subject", "emotion", "take", "status", "reason", "detail", "split", "shard")
MANIFEST_INT_COLUMNS = ("n_source_frames", "onset", "peak")
MANIFEST_COLUMNS = (
    "clip_id", "source", "subject", "emotion", "take", "status", "reason", "detail",
    "n_source_frames", "onset", "peak", "split", "shard",
)

STATUS_ACCEPTED = "accepted"
STATUS_REJECTED = "rejected"
SPLITS = ("train", "val", "test")

#: reject reasons (DESIGN §5): exactly one per rejected clip
REASONS = (
    "unreadable", "too_short", "no_face", "multiple_faces", "blurry", "head_motion",
    "unlabelled", "unknown_emotion", "no_expression", "duplicate",
)

#: per-clip datasets
FRAMES = "frames"            # (T,S,S,3) uint8 RGB, one frame per chunk
LANDMARKS = "landmarks"      # (T,68,2) float32, stored-pixel (x, y)
MOUTH_MASK = "mouth_mask"    # (T,S,S) uint8 {0,1}
DEGREE = "degree"            # (T,) float32, 0 at onset .. 1 at peak
SOURCE_INDEX = "source_index"  # (T,) int32
CLIP_DATASETS = (FRAMES, LANDMARKS, MOUTH_MASK, DEGREE, SOURCE_INDEX)
CLIP_ATTRS = ("subject", "emotion", "emotion_code", "source", "split", "fps", "original_size", "crop_box",
              "blur_score", "head_motion")

#: iBUG-68 index groups
JAW = tuple(range(0, 17))
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
NOSE = tuple(range(27, 36))
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
MOUTH = tuple(range(48, 68))
OUTER_LIP = tuple(range(48, 60))
INNER_LIP = tuple(range(60, 68))

#: horizontal-flip permutation of the 68 iBUG points (index i of the flipped face = FLIP_68[i] of the original)
FLIP_68 = (
    list(range(16, -1, -1))            # jaw
    + list(range(26, 21, -1))          # brows swap
    + list(range(21, 16, -1))
    + [27, 28, 29, 30]                 # nose bridge
    + [35, 34, 33, 32, 31]             # nose bottom
    + [45, 44, 43, 42, 47, 46]         # eyes swap
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65]                  # inner lip
)
assert len(FLIP_68) == 68 and sorted(FLIP_68) == list(range(68))
