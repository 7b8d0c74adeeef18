"""Motion blocks: schema and shapes, block contents, short and corrupt clips, streaming, the cap."""

from __future__ import annotations

import weakref

import numpy as np
import pytest

from emonets.errors import MediaError
from emonets.features.rows import clip_array
from emonets.features.motion_blocks import (
    MotionConfig,
    extract_motion_blocks,
    iter_block_groups,
    motion_blocks_from_frames,
)

SMALL = MotionConfig(fps=15.0, frame_size=(32, 48), block=16, depth=10, stride=8, time_stride=5,
                     max_blocks_per_clip=None)


def test_blocks_of_a_generated_clip_fit_the_catalog(make_clip, store):
    clip = make_clip("moving.mp4", seconds=2.0, fps=25, size=(64, 80), audio=False)
    table = extract_motion_blocks(clip, clip_id="moving", config=SMALL)
    rows, cols = SMALL.grid
    assert (rows, cols) == (3, 5)
    n_frames = 30  # 2 s sampled at 15 fps
    steps = (n_frames - SMALL.depth) // SMALL.time_stride + 1
    assert len(table) == steps * rows * cols
    blocks = clip_array("motion_blocks", table)
    assert blocks.shape == (len(table), 10, 16, 16) and blocks.dtype == np.uint8
    assert (table["block"].to_numpy() == np.arange(len(table))).all()
    assert np.all(np.diff(table["t"].to_numpy()) >= 0)
    assert set(table["y"]) == {0, 8, 16} and set(table["x"]) == {0, 8, 16, 24, 32}
    assert table["frame"].max() == (steps - 1) * SMALL.time_stride
    # the gradient moves every frame, so blocks change over their depth
    assert np.abs(np.diff(blocks.astype(int), axis=1)).mean() > 1
    store.write("motion_blocks", table, partition="moving")  # raises on a schema mismatch
    back = store.read("motion_blocks")
    assert np.array_equal(clip_array("motion_blocks", back), blocks)


def test_block_contents_are_the_frames_under_them():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(23, 32, 48), dtype=np.uint8)
    cfg = MotionConfig(frame_size=(32, 48), block=16, depth=10, stride=8, time_stride=5, max_blocks_per_clip=None)
    table = motion_blocks_from_frames(((i / 15, f) for i, f in enumerate(frames)), clip_id="r", config=cfg)
    blocks = clip_array("motion_blocks", table)
    assert len(table) == 3 * 15  # block starts at frames 0, 5, 10
    for row, block in zip(table.itertuples(), blocks):
        expected = frames[row.frame : row.frame + 10, row.y : row.y + 16, row.x : row.x + 16]
        assert np.array_equal(block, expected)
        assert row.t == pytest.approx(row.frame / 15)


def test_grid_is_centred_when_the_stride_does_not_divide_the_frame():
    cfg = MotionConfig(frame_size=(20, 30), block=16, depth=2, stride=8, time_stride=1, max_blocks_per_clip=None)
    frames = ((i, np.zeros((20, 30), np.uint8)) for i in range(2))
    table = motion_blocks_from_frames(frames, clip_id="c", config=cfg)
    assert cfg.grid == (1, 2)
    assert sorted(set(table["y"])) == [2] and sorted(set(table["x"])) == [3, 11]


def test_a_clip_shorter_than_one_block_gives_an_empty_table(make_clip):
    clip = make_clip("short.mp4", seconds=0.4, fps=25, audio=False)  # 10 frames -> 6 at 15 fps
    table = extract_motion_blocks(clip, clip_id="short", config=SMALL)
    assert len(table) == 0
    assert list(table.columns) == ["clip_id", "block", "t", "frame", "y", "x", "data", "depth", "height", "width"]
    assert clip_array("motion_blocks", table).shape == (0,)


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100])
def test_unreadable_files_raise_media_error(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(MediaError, match="bad.mp4"):
        extract_motion_blocks(bad, clip_id="bad", config=SMALL)


def test_streaming_holds_only_depth_frames():
    """The frames handed in are released as the window moves: at most depth+1 alive at once."""
    cfg = MotionConfig(frame_size=(32, 32), block=16, depth=10, stride=16, time_stride=5, max_blocks_per_clip=50)
    alive, peak, pulled = [0], [0], [0]

    def _release():
        alive[0] -= 1

    def frames():
        for i in range(200):
            frame = np.full((32, 32), i % 256, dtype=np.uint8)
            alive[0] += 1
            weakref.finalize(frame, _release)
            peak[0] = max(peak[0], alive[0])
            pulled[0] += 1
            yield i / 15, frame
            del frame

    groups = iter_block_groups(frames(), config=cfg)
    first = next(groups)
    assert pulled[0] == cfg.depth  # the first block needs exactly depth frames, not the whole clip
    assert first["data"].shape == (4, 10, 16, 16)
    groups.close()
    assert alive[0] == 0  # closing the stream releases every frame: no hidden copies kept
    peak[0] = 0
    table = motion_blocks_from_frames(frames(), clip_id="long", config=cfg)
    assert len(table) == 50
    assert pulled[0] == cfg.depth + 200
    assert peak[0] <= cfg.depth + 1


def test_cap_keeps_a_deterministic_uniform_subset():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(120, 32, 32), dtype=np.uint8)
    stream = lambda: ((i / 15, f) for i, f in enumerate(frames))  # noqa: E731
    base = dict(frame_size=(32, 32), block=16, depth=10, stride=8, time_stride=5)
    full = motion_blocks_from_frames(stream(), clip_id="c", config=MotionConfig(**base, max_blocks_per_clip=None))
    capped = motion_blocks_from_frames(stream(), clip_id="c", config=MotionConfig(**base, max_blocks_per_clip=40))
    again = motion_blocks_from_frames(stream(), clip_id="c", config=MotionConfig(**base, max_blocks_per_clip=40))
    assert len(full) == 23 * 9 and len(capped) == 40
    assert capped.equals(again)
    ids = capped["block"].to_numpy()
    assert np.all(np.diff(ids) > 0)
    assert ids.max() > len(full) // 2  # drawn from the whole clip, not its first 40 blocks
    by_id = full.set_index("block")
    assert all(by_id.loc[r.block, "data"] == r.data for r in capped.itertuples())


def test_config_round_trips_and_rejects_nonsense():
    cfg = MotionConfig(frame_size=[48, 64], max_blocks_per_clip=10)
    assert cfg.frame_size == (48, 64)
    assert MotionConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        MotionConfig(frame_size=(8, 64))
    with pytest.raises(ValueError):
        MotionConfig(max_blocks_per_clip=0)


def test_real_cremad_clip(shared):
    clip = shared("crema-d", "1001_DFA_HAP_XX.flv")
    table = extract_motion_blocks(clip, clip_id="1001_DFA_HAP_XX")
    blocks = clip_array("motion_blocks", table)
    cfg = MotionConfig()
    assert len(table) > 0 and blocks.shape[1:] == (cfg.depth, cfg.block, cfg.block)
    assert len(table) % (cfg.grid[0] * cfg.grid[1]) == 0
    assert table["t"].max() < 1.9  # clip lasts 1.87 s
    assert blocks.std() > 5  # real image content, not a blank decode
