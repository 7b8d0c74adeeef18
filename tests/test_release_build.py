"""Building the release (emonets.release_build): the rules fixed before the figures they decide
on, halved weights that load back, and the model card's generated section."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emonets import release_build as rb
from emonets.bundle import Bundle, load_bundle, save_bundle


def test_motion_stays_only_when_it_beats_the_fusion_without_it_by_a_standard_error():
    without = {"cv_accuracy": 0.75, "standard_error": 0.03}
    assert not rb.earns_its_place({"cv_accuracy": 0.77}, without)  # inside the noise: left out
    assert not rb.earns_its_place({"cv_accuracy": 0.78}, without)
    assert rb.earns_its_place({"cv_accuracy": 0.79}, without)


def test_halved_weights_are_float16_and_load_back_close(tmp_path):
    w = torch.linspace(-1, 1, 50).reshape(5, 10)
    state = {"w": w, "steps": torch.tensor(3)}
    fused = tmp_path / "fused"
    save_bundle(fused, Bundle(kind="fused", torch_states={"net": state}))
    save_bundle(fused / "specialists" / "audio", Bundle(kind="audio", torch_states={"net0": state}))
    from emonets.prediction_cache import model_key

    before = model_key(fused)
    assert rb.halve_torch_weights(fused) == 2
    assert model_key(fused) != before  # never served the float32 bundle's cached predictions
    for path in (fused, fused / "specialists" / "audio"):
        (loaded,) = load_bundle(path).torch_states.values()
        assert loaded["w"].dtype == torch.float16 and loaded["steps"].dtype == torch.int64
        np.testing.assert_allclose(loaded["w"].float().numpy(), w.numpy(), atol=1e-3)


def _result(acc, f1, spec_acc):
    return {"accuracy": acc, "macro_f1": f1, "n": 200,
            "specialists": {"audio": {"accuracy": spec_acc, "macro_f1": 0.5, "n": 200}}}


def test_figures_equal_compares_every_figure_to_three_decimals():
    assert rb.figures_equal(_result(0.7601, 0.75, 0.6), _result(0.7604, 0.75, 0.6))
    assert not rb.figures_equal(_result(0.760, 0.75, 0.6), _result(0.765, 0.75, 0.6))
    assert not rb.figures_equal(_result(0.760, 0.75, 0.600), _result(0.760, 0.75, 0.605))  # a specialist moved


def test_the_cards_generated_section_is_replaced_and_the_rest_kept(tmp_path):
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("# card\n\n## face_cnn\nhand-written\n")
    rb.write_card_section(card, f"{rb.CARD_START}\nfirst\n{rb.CARD_END}\n")
    rb.write_card_section(card, f"{rb.CARD_START}\nsecond\n{rb.CARD_END}\n")
    text = card.read_text()
    assert "hand-written" in text and "second" in text and "first" not in text
    assert text.count(rb.CARD_START) == 1


def test_the_fused_card_section_names_data_licences_rules_and_figures():
    conf = np.eye(7, dtype=int).tolist()
    ev = {"accuracy": 0.76, "macro_f1": 0.75, "n": 7, "confusion": conf,
          "specialists": {"audio": {"accuracy": 0.6, "macro_f1": 0.58, "n": 7}}}
    build = {"specialists": ["face_cnn", "audio"], "fusion_method": "log_linear", "fusion_rule": "one-SE",
             "library_version": "0.1.0", "built": "2026-12-08", "weights": "float16", "weights_rule": rb.HALF_RULE,
             "bytes": 9_000_000, "face_source": "the shipped ConvNet", "clips": {"total": 14, "train": 0, "val": 7,
                                                                                 "test": 7},
             "motion": {"summary": "Left out: ..."}, "evaluation": {"val": ev, "test": ev}}
    text = rb.fused_card(build)
    for needle in ("CC BY-NC-SA 4.0", "research use", "actors 15–18", "log_linear", "float16", "| test | **fused** | 7 |",
                   "| angry (1) | 1 | 0 |", "Known limits", "Left out"):
        assert needle in text, needle
