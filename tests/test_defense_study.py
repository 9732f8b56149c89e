"""Notebook 08's study helpers (gifd_lite.defense_study)."""

from gifd_lite import data, defense_study, models, pipeline
from gifd_lite.gan import load_generator


def test_the_fl_tables_reference_row_is_the_defense_tables_clean_run(cifar_test, smoke, monkeypatch):
    """Section 3's 'batch 1 (reference)' is section 2's 'none' run (same image, model, preset and seed): taken
    from it, not run again, and equal to what running it again gives."""
    model = models.build_model("convnet", seed=0).eval()
    x, y, _ = data.victim_batch(cifar_test, 5, 1)
    G, attacks = load_generator("cifar10"), ["ig", "gifd"]
    rows, _ = defense_study.defense_table(model, x, y, G, [("none", None, False)], attacks, smoke)
    calls, run_attack = [], pipeline.run_attack

    def counting(*args, **kwargs):
        calls.append(args[0])
        return run_attack(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_attack", counting)
    reused = defense_study.fl_table(model, model, cifar_test, 5, G, attacks, smoke, reference=rows)
    assert len(calls) == 3 * 2                                   # batch 4, FedAvg, trained model; IG and GIFD
    rerun = defense_study.fl_table(model, model, cifar_test, 5, G, attacks, smoke)
    assert len(calls) == 3 * 2 + 4 * 2
    assert [(r["setting"], r["attack"]) for r in reused] == [(r["setting"], r["attack"]) for r in rerun]
    for clean, again, row in zip(reused[:2], rerun[:2], rows):
        assert clean == {"setting": "batch 1 (reference)", "attack": row["attack"], "psnr": row["psnr"]}
        assert abs(again["psnr"] - row["psnr"]) < 1e-6
    assert [r["psnr"] for r in reused[2:]] == [r["psnr"] for r in rerun[2:]]
