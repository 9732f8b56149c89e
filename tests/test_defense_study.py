"""Notebook 08's study helpers (gifd_lite.defense_study)."""

from gifd_lite import data, defense_study, models, pipeline


def test_the_fl_tables_reference_row_is_the_defense_tables_clean_run(cifar_test, smoke, monkeypatch):
    """Section 3's 'batch 1 (reference)' is section 2's 'none' run (same image, model, preset and seed): taken
    from it, not run again, and equal to what running it again gives."""
    model = models.build_model("convnet", seed=0).eval()
    x, y, _ = data.victim_batch(cifar_test, 5, 1)
    rows, _ = defense_study.defense_table(model, x, y, None, [("none", None, False)], ["ig"], smoke)
    calls, run_attack = [], pipeline.run_attack

    def counting(*args, **kwargs):
        calls.append(args[0])
        return run_attack(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_attack", counting)
    reused = defense_study.fl_table(model, model, cifar_test, 5, None, ["ig"], smoke, reference=rows)
    assert len(calls) == 3                                       # batch 4, FedAvg, trained model
    rerun = defense_study.fl_table(model, model, cifar_test, 5, None, ["ig"], smoke)
    assert len(calls) == 3 + 4
    assert [r["setting"] for r in reused] == [r["setting"] for r in rerun]
    assert reused[0] == {"setting": "batch 1 (reference)", "attack": "ig", "psnr": rows[0]["psnr"]}
    assert abs(rerun[0]["psnr"] - rows[0]["psnr"]) < 1e-6
    assert [r["psnr"] for r in reused[1:]] == [r["psnr"] for r in rerun[1:]]
