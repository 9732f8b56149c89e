"""Every notebook runs end to end under papermill in the smoke preset and writes its metrics.json."""

import json

import pytest

from gifd_lite.course import notebooks, run_notebook

EXPECTED = {
    "00_setup_and_tour": ["dependencies_ok", "dependencies_total", "n_test_images", "data_source"],
    "01_gradient_leakage": ["idlg_label_accuracy", "dlg_psnr_mean", "idlg_psnr_mean", "failure_convnet_idlg_psnr"],
    "02_inverting_gradients": ["ig_psnr_mean", "ablation", "restart_chosen_psnr", "batch_psnr", "trained_psnr"],
    "03_gan_prior": ["fidelity", "fidelity_per_class", "diversity", "headroom_latent_psnr", "headroom_stage2_psnr"],
    "04_gan_latent_inversion": ["ggl_psnr_mean", "ggl_adam_psnr_mean", "gias_latent_psnr_mean", "gias_psnr_mean",
                                "ggl_right_class", "oracle_latent_psnr_mean"],
    "05_hierarchical_feature_search": ["gifd_psnr_mean", "best_layers", "stage_names", "clean_holdout_rule_psnr_mean",
                                       "clean_loss_rule_psnr_mean", "clean_oracle_rule_psnr_mean",
                                       "noise_holdout_rule_psnr_mean", "noise_oracle_rule_psnr_mean", "ig_psnr_mean"],
    "06_l1_ball_regularization": ["ablation", "radius_effect_db"],
    "07_out_of_distribution_and_label_mapping": ["mapping_table", "mapping_agrees_with_oracle", "gifd_by_mapping",
                                                 "latent_ceiling", "cross_domain_psnr"],
    "08_defenses_and_fl_scenarios": ["gradient_effect", "defense_table", "fl_table", "utility"],
    "09_reproduce_paper_tables": ["table", "runs", "cells"],
    "10_attacking_a_flower_federation": ["records", "ig_psnr", "gifd_psnr", "recorded_minus_simulated",
                                         "fedavg_counts_exact", "fedavg_ig_psnr", "aggregate_ig_psnr",
                                         "own_model_ig_psnr"],
}


def test_every_notebook_is_known_and_stripped():
    import nbformat

    names = [p.stem for p in notebooks()]
    assert names == sorted(EXPECTED), names
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name} has outputs"
        assert "parameters" in nb.cells[1].metadata.get("tags", []), f"{path.name}: cell 2 must be parameters"
        # papermill injects PRESET *after* this cell: sizes looked up here would follow the wrong preset
        assert "[PRESET]" not in nb.cells[1].source, f"{path.name}: resolve preset-dependent sizes in the setup cell"


@pytest.mark.notebook
@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_preset(path, tmp_path):
    # INTERACTIVE stays False here: displaying widgets under papermill can block nbclient now and then
    # (jupyter/nbclient#312; one of twelve widget runs hung here, under load), so the widgets are unit-tested
    metrics = run_notebook(path, tmp_path, preset="smoke", device="cpu")
    assert metrics["preset"] == "smoke"
    for key in EXPECTED[path.stem]:
        assert metrics.get(key) is not None, f"{path.stem}: metrics.json lacks {key}"
    written = json.loads((tmp_path / path.stem / "metrics.json").read_text())
    assert written["seed"] == 0
    if path.stem == "00_setup_and_tour":
        assert written["dependencies_ok"] == written["dependencies_total"]
        assert written["n_test_images"] == 10000
    if path.stem == "01_gradient_leakage":
        assert written["idlg_label_accuracy"] == 1.0
    if path.stem == "02_inverting_gradients":
        assert written["batch_label_accuracy"] >= 0.75
    if path.stem == "05_hierarchical_feature_search":     # the oracle sees the truth: no rule can beat it
        for case in ("clean", "noise"):
            assert written[f"{case}_oracle_rule_psnr_mean"] >= written[f"{case}_holdout_rule_psnr_mean"] - 1e-6
    if path.stem == "09_reproduce_paper_tables":       # its sweep writes under OUTPUT_DIR, never into docs/results
        from gifd_lite.results import RESULTS_DIR

        assert not (RESULTS_DIR / "main.jsonl").exists()
    if path.stem == "10_attacking_a_flower_federation":     # a real Flower run: 2 clients x 2 rounds + 2 FedAvg
        assert written["records"] == 6 and written["recorded_minus_simulated"] <= 1e-6   # 1.5e-8 seen in CI
        assert all(written["fedavg_counts_exact"])
    if path.stem == "03_gan_prior":
        assert written["diversity"]["generated"] > written["diversity"]["collapsed"] == 0.0
        assert written["headroom_stage2_psnr"] >= written["headroom_latent_psnr"] - 0.5
