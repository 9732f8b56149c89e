"""The reproduction runner: tables, resuming, and the Dask backend giving the same records."""

import json
import math

import pytest
from PIL import Image
import torch

from gifd_lite import reproduce
from gifd_lite.__main__ import main
from gifd_lite.errors import GifdError


def test_tables_have_the_expected_cells():
    main_specs = reproduce.table_specs("main", "smoke", images=2, seeds=2)
    assert len(main_specs) == 4 * 2 * 2 and {s.tag for s in main_specs} == {"ig", "ggl", "gias", "gifd"}
    ig = next(s for s in main_specs if s.method == "ig")
    assert ig.overrides["ig"]["iterations"] == reproduce._budget("smoke")
    for name in reproduce.TABLES:
        specs = reproduce.table_specs(name, "smoke", images=1)
        assert specs and len({s.key() for s in specs}) == len(specs), name
    with pytest.raises(GifdError):
        reproduce.table_specs("nope", "smoke")


def test_the_defenses_gallery_is_one_figure_per_defense():
    cells = list(dict.fromkeys(s.tag for s in reproduce.table_specs("defenses", "smoke", images=1)))
    groups = reproduce.gallery_groups("defenses", cells)
    assert list(groups) == list(reproduce.DEFENSE_STRENGTHS)
    assert sorted(c for g in groups.values() for c in g) == sorted(cells)       # every cell once
    assert all(c.split(" | ")[1].startswith(name) for name, g in groups.items() for c in g)
    assert max(len(g) for g in groups.values()) == 12                           # 2 strengths x plain/adaptive x 3
    assert reproduce.gallery_groups("main", ["ig", "gifd"]) == {"": ["ig", "gifd"]}


def test_the_batch_gallery_is_one_figure_per_batch_size():
    cells = list(dict.fromkeys(s.tag for s in reproduce.table_specs("batch", "smoke", images=1)))
    assert reproduce.gallery_groups("batch", cells) == {"B=1": ["ig | B=1", "gifd | B=1"],
                                                       "B=4": ["ig | B=4", "gifd | B=4"],
                                                       "B=8": ["ig | B=8", "gifd | B=8"]}


def test_tables_attack_the_model_asked_for():
    assert {s.model for s in reproduce.table_specs("main", "smoke", images=1)} == {"resnet18"}
    convnet = reproduce.table_specs("defenses", "smoke", images=1, model="convnet")
    assert {s.model for s in convnet} == {"convnet"}
    resnet = reproduce.table_specs("defenses", "smoke", images=1)
    assert [s.tag for s in convnet] == [s.tag for s in resnet]          # only the model differs


def test_a_prior_given_to_a_table_reaches_its_generative_runs_only():
    plain = reproduce.table_specs("main", "smoke", images=1, model="convnet")
    strong = reproduce.table_specs("main", "smoke", images=1, model="convnet", prior="cifar10-strong")
    for a, b in zip(plain, strong):
        if a.method == "ig":
            assert a.key() == b.key()                      # IG's records are the same runs with or without it
        else:
            assert a.prior is None and b.prior == "cifar10-strong" and a.key() != b.key()
    assert {s.method for s in strong} >= {"ig", "gifd"}


def test_mean_ci_matches_the_t_interval():
    m, h = reproduce.mean_ci([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and h == pytest.approx(2.0540, abs=1e-3)     # t_{0.975,3} * s / sqrt(4) = 3.182 * 1.291 / 2
    assert math.isnan(reproduce.mean_ci([5.0])[1])


def test_interrupted_sweep_resumes_without_redoing_runs(tmp_path):
    specs = reproduce.table_specs("main", "smoke", images=1, model="convnet")   # resuming is the same for any model
    out = tmp_path / "main.jsonl"

    def stop_after_two(record, seen=[]):
        seen.append(record)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reproduce.run_table(specs, out, on_record=stop_after_two)
    assert len(out.read_text().splitlines()) == 2
    again = []
    records = reproduce.run_table(specs, out, on_record=again.append)
    assert len(again) == 2 and len(records) == 4                   # only the two missing runs ran
    assert [r["spec"]["method"] for r in records] == ["ig", "ggl", "gias", "gifd"]


def test_cli_writes_markdown_and_csv(tmp_path, capsys):
    code = main(["reproduce", "--table", "stages", "--preset", "smoke", "--images", "1", "--model", "convnet",
                 "--out", str(tmp_path)])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["runs"] == 5 and (tmp_path / "stages.md").exists() and (tmp_path / "stages.csv").exists()
    assert "Regenerate: `python -m gifd_lite reproduce --table stages" in (tmp_path / "stages.md").read_text()
    text = (tmp_path / "stages.md").read_text()
    assert "--model convnet" in text and "GIFD per stage" in text and (tmp_path / "stages.png").stat().st_size > 0
    per_stage = text[text.index("GIFD per stage"):].splitlines()
    stopped = next(line for line in per_stage if line.startswith("| gifd \\| stop after stage 0 |"))
    assert stopped.count("—") == 4 and "n/a" not in stopped      # stages a run never reached: not run, not missing
    assert {json.loads(line)["model"] for line in (tmp_path / "stages.jsonl").read_text().splitlines()} == {"convnet"}
    # every run kept its picture (truth above reconstruction, 32x32 each), and the table shows them in a gallery
    records = [json.loads(line) for line in (tmp_path / "stages.jsonl").read_text().splitlines()]
    assert all(Image.open(tmp_path / "stages_images" / r["reconstruction_png"]).size == (32, 64) for r in records)
    assert "## Gallery" in text and (tmp_path / "stages_gallery.png").stat().st_size > 0

    # --read-only renders the same table from the records and runs nothing
    records_before = (tmp_path / "stages.jsonl").read_text()
    (tmp_path / "stages.md").unlink()
    args = ["reproduce", "--table", "stages", "--preset", "smoke", "--model", "convnet", "--out", str(tmp_path),
            "--read-only"]
    assert main(args + ["--images", "1"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["psnr"] == result["psnr"] and (tmp_path / "stages.md").read_text() == text
    assert (tmp_path / "stages.jsonl").read_text() == records_before
    assert main(args + ["--images", "2"]) == 0                      # a partial table: the image it has
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runs"] == 5
    assert main(["reproduce", "--table", "main", "--preset", "smoke", "--out", str(tmp_path), "--read-only"]) == 1
    assert "has no records of this table" in capsys.readouterr().err


def test_dask_backend_gives_the_same_records_as_local(tmp_path):
    pytest.importorskip("dask.distributed")
    specs = [s for s in reproduce.table_specs("main", "smoke", images=1, model="convnet") if s.method in ("ig", "gifd")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                     # the Dask workers run one thread each: same arithmetic
    try:
        local = reproduce.run_table(specs, tmp_path / "local.jsonl")
    finally:
        torch.set_num_threads(threads)
    remote = reproduce.run_table(specs, tmp_path / "dask.jsonl", backend="dask", workers=2)
    for a, b in zip(local, remote):
        assert a["key"] == b["key"]
        for key in ("psnr", "ssim", "gradient_loss"):
            assert abs(a[key] - b[key]) <= 1e-4, (a["method"], key, a[key], b[key])


def test_oracle_agreement_of_a_label_mapping():
    def record(true_labels, chosen):
        return {"spec": {"tag": "gifd | mapping=gradient", "scenario": "ood-disjoint", "prior": None},
                "true_labels": true_labels, "label_mapping": {"gan_classes": chosen}, "psnr": 20.0, "ssim": 0.5,
                "lpips": None, "seconds": 1.0, "seconds_per_iteration": 0.1}

    # ood-disjoint: FL labels 0..4 = dog, frog, horse, ship, truck; the oracle maps them to cat, bird, deer,
    # airplane, automobile = GAN classes 3, 2, 4, 0, 1 of the cifar10-5 prior
    assert reproduce._agrees_with_oracle(record([0, 1, 2, 3, 4], [3, 2, 4, 0, 1]))
    assert not reproduce._agrees_with_oracle(record([0], [0]))
    rows = reproduce.summarise([record([0], [3]), record([3], [0]), record([4], [3])])
    assert rows[0]["oracle_agreement"] == (2, 3)


def test_paired_differences_compare_each_cell_with_gifd_on_the_same_image():
    def record(tag, index, psnr, stages=()):
        return {"spec": {"tag": tag, "index": index, "seed": 0}, "psnr": psnr,
                "stages": [{"stage": name, "psnr": v} for name, v in stages]}

    records = [record("gifd | B=1", 5, 30.0), record("ig | B=1", 5, 25.0),
               record("gifd | B=1", 1005, 20.0), record("ig | B=1", 1005, 21.0),
               record("ig | B=4", 5, 18.0)]                    # no GIFD run at B=4: no pair
    (row,) = reproduce.paired_differences("batch", records)
    assert row["cell"] == "ig | B=1" and row["reference"] == "gifd | B=1" and row["n"] == 2
    assert row["difference"][0] == pytest.approx(-2.0) and row["higher"] == 1
    assert row["wilcoxon_p"] == pytest.approx(1.0)                # one image up 1 dB, one down 5: no evidence
    assert row["stages"] is None                                  # IG has no stages
    mapped = [record("gifd | mapping=none", 5, 20.0, [("latent", 12.0), ("4x4", 20.0)]),
              record("gifd | mapping=soft", 5, 21.0, [("latent", 15.0), ("4x4", 21.0)])]
    (row,) = reproduce.paired_differences("label_mapping", mapped)
    assert row["stages"]["latent"][0] == pytest.approx(3.0) and row["stages"]["4x4"][0] == pytest.approx(1.0)
    assert reproduce._reference("label_mapping", "gifd | mapping=soft", []) == "gifd | mapping=none"
    assert reproduce._reference("main", "ggl", []) == "gifd"


def test_tables_that_share_a_spec_share_gifd_and_ig_runs_to_the_digit_and_the_determinism_record_says_so():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("check_run_determinism", root / "tools" / "check_run_determinism.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    shared = tool.same_spec_in_two_tables()                 # raises if the specs differ beyond the tag
    assert shared["gifd"] == {"images": 10, "differ": 0, "largest_gap_db": 0.0}
    record = json.loads((root / "docs" / "results" / "runs" / "run_determinism.json").read_text())
    assert record["ood_vs_label_mapping"] == shared
    assert record["main_vs_batch"] == tool.main_and_batch()
    assert all(v["differ"] == 0 for v in record["main_vs_batch"].values())
    assert len({r["psnr"] for r in record["methods"]["gifd"]["runs"]}) == 1
    assert record["methods"]["ggl"]["committed_psnr"] in {r["psnr"] for r in record["methods"]["ggl"]["runs"]}


def test_a_run_another_table_already_holds_is_copied_not_run_again(tmp_path):
    """``ood``'s ood-disjoint GIFD and GGL runs are ``label_mapping``'s oracle runs (every field but the tag
    equal): reproduce copies them, marked, with their pictures; nothing else is copied, and only once."""
    from dataclasses import asdict

    from gifd_lite.experiments import read_records, reuse_runs_of_other_tables
    from gifd_lite.gallery import image_name, save_pair

    mapping = reproduce.table_specs("label_mapping", "smoke", images=2, model="convnet")
    held = []
    for n, spec in enumerate(mapping):
        name = image_name(spec.key())
        save_pair(torch.full((1, 3, 32, 32), n / 20), torch.zeros(1, 3, 32, 32), tmp_path / "label_mapping_images" / name)
        held.append({"method": spec.method, "psnr": 10.0 + n, "spec": asdict(spec), "key": spec.key(),
                     "reconstruction_png": name})
    (tmp_path / "label_mapping.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held))

    ood = reproduce.table_specs("ood", "smoke", images=2, model="convnet")
    out, images = tmp_path / "ood.jsonl", tmp_path / "ood_images"
    assert reuse_runs_of_other_tables(ood, out, images) == 4       # GIFD and GGL on 2 images
    copies = read_records(out)
    for copy in copies:
        spec = next(s for s in ood if s.key() == copy["key"])
        assert spec.tag in ("gifd | ood-disjoint", "ggl | ood-disjoint") and copy["spec"]["tag"] == spec.tag
        assert copy["reused_from"] == "label_mapping.jsonl"
        original = next(r for r in held if r["spec"] == {**copy["spec"], "tag": r["spec"]["tag"]})
        assert original["spec"]["tag"] in ("gifd | mapping=oracle", "ggl | mapping=oracle")
        assert copy["psnr"] == original["psnr"]
        assert (images / copy["reconstruction_png"]).read_bytes() == \
            (tmp_path / "label_mapping_images" / original["reconstruction_png"]).read_bytes()
    assert reuse_runs_of_other_tables(ood, out, images) == 0       # already there
    assert len(reproduce.recorded(ood, out)) == 4                   # the rest (IG, GIAS, cross-domain) must run
    gone = next(r for r in held if r["spec"]["tag"] == "ggl | mapping=oracle")
    (tmp_path / "label_mapping_images" / gone["reconstruction_png"]).unlink()
    assert reuse_runs_of_other_tables(ood, tmp_path / "again.jsonl", tmp_path / "again_images") == 3   # runs again
