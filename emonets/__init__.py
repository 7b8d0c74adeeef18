"""EmoNets: multimodal emotion recognition in video, re-created.

The pure library: dataset readers, decoding, faces, mouths, MFCC, motion blocks, the
specialists, fusion and evaluation. It never imports Prefect; `tasks/` and `flows/` wire it in.
"""

__version__ = "0.1.0"
