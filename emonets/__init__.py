"""EmoNets: multimodal emotion recognition in video, re-created.

The pure library: dataset readers, decoding, faces, mouths, MFCC, motion blocks, the
specialists, fusion and evaluation. It never imports Prefect; `tasks/` and `flows/` wire it in.

First thing on import: numba's JIT cache goes to the project's own folder (see
:mod:`emonets.features.jit_cache`), before anything can import numba or librosa.
"""

from emonets.features import jit_cache as _jit_cache

_jit_cache.configure()

from emonets.version import __version__  # noqa: E402  (after the JIT cache is configured)
