import json
import subprocess
import sys

import pytest

from gifd_lite.__main__ import main


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gifd_lite", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("args", [
    ["attack", "--method", "ig", "--image", "missing.png", "--label", "3"],
    ["attack", "--method", "ig", "--image", "{img}", "--label", "12"],
    ["attack", "--method", "nope", "--index", "0"],
    ["attack", "--method", "ig", "--image", "{bad}", "--label", "1"],
    ["attack", "--method", "ig", "--index", "10000"],
    ["attack", "--method", "ig", "--index", "0", "--preset", "huge"],
    ["attack", "--method", "gifd", "--index", "0", "--prior", "no-such-prior"],
    ["attack", "--method", "gifd", "--index", "0", "--prior", "{bad}"],
    ["attack", "--method", "ig", "--index", "0", "--device", "tpu"],
    ["attack", "--method", "ig", "--image", "{img}", "{img}", "--label", "1"],
    ["attack", "--method", "ig", "--index", "0", "--label-mapping", "gradient"],
    ["attack", "--method", "gifd", "--index", "0", "--prior", "cifar10-5"],
    ["attack", "--method", "ig", "--scenario", "ood-disjoint", "--image", "{img}", "--label", "5"],
    ["attack", "--method", "ig", "--index", "0", "--defense", "soteria", "--defense-param", "1.5"],
])
def test_bad_input_is_one_line_without_traceback(args, tmp_path):
    from PIL import Image

    img = tmp_path / "ok.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(img)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    args = [a.format(img=img, bad=bad) for a in args]
    result = _run(*args, "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("gifd_lite: error:")]
    assert len(errors) == 1, result.stderr


@pytest.mark.parametrize("args, status", [
    (["attack", "--method", "nope", "--index", "0"], 2),                                   # unknown option value
    (["attack", "--method", "ig"], 2),                                                    # neither --index nor --image
    (["attack", "--method", "ig", "--image", "{img}", "--label", "12"], 2),                # label out of range
    (["attack", "--method", "ig", "--image", "missing.png", "--label", "3"], 1),          # a file that is not there
    (["attack", "--method", "gifd", "--index", "0", "--prior", "{bad}"], 1),              # a corrupt checkpoint
])
def test_usage_errors_exit_2_and_runtime_errors_exit_1(args, status, tmp_path):
    from PIL import Image

    img = tmp_path / "ok.png"
    Image.new("RGB", (32, 32)).save(img)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main([a.format(img=img, bad=bad) for a in args] + ["--out", str(tmp_path / "out")]) == status


def test_version_and_a_bare_fetch_parse():
    from gifd_lite import __version__
    from gifd_lite.__main__ import build_parser

    result = _run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"gifd_lite {__version__}"
    assert build_parser().parse_args(["fetch"]).what == ["lpips"]   # a '*' positional with choices fails on 3.11
    assert main(["fetch", "weights"]) == 2


def test_diagnostics_go_to_stderr_and_stdout_is_the_json_line(tmp_path):
    result = _run("attack", "--method", "idlg", "--index", "3000", "--preset", "smoke", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1 and json.loads(result.stdout)["method"] == "idlg"
    assert "running on" in result.stderr


def test_attack_writes_metrics_and_picture(tmp_path):
    result = _run("attack", "--method", "idlg", "--index", "3000", "--preset", "smoke", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert printed == written
    for key in ("method", "model", "preset", "psnr", "ssim", "lpips", "mse", "label_accuracy", "iterations",
                "seconds", "seconds_per_iteration", "device", "seed"):
        assert key in written
    assert written["label_accuracy"] == 1.0 and written["preset"] == "smoke"
    assert (tmp_path / "reconstruction.png").stat().st_size > 0


def test_user_image_is_resized_and_attacked(tmp_path):
    from PIL import Image

    img = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), (20, 120, 220)).save(img)
    code = main(["attack", "--method", "ig", "--model", "convnet", "--image", str(img), "--label", "4",
                 "--preset", "smoke", "--iters", "5", "--out", str(tmp_path / "o")])
    assert code == 0
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["iterations"] == 5


def test_info_reports_data_source(capsys):
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "image folder" in info["cifar10"] or "torchvision" in info["cifar10"]


def test_ood_disjoint_gifd_with_a_label_mapping(tmp_path):
    """The FL task is dog..truck as 0..4 on a 5-class model; the 5-class prior is conditioned by the oracle."""
    code = main(["attack", "--method", "gifd", "--scenario", "ood-disjoint", "--index", "0", "--model", "convnet",
                 "--label-mapping", "oracle", "--preset", "smoke", "--out", str(tmp_path)])
    assert code == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["prior"] == "cifar10-5" and m["task_classes"] == ["dog", "frog", "horse", "ship", "truck"]
    fl_class = m["task_classes"][m["labels_used"][0]]
    expected = {"dog": 3, "frog": 2, "horse": 4, "ship": 0, "truck": 1}[fl_class]
    assert m["label_mapping"]["gan_classes"] == [expected] and m["label_accuracy"] == 1.0


def test_soteria_and_adaptive_flags_reach_the_threat_model(tmp_path):
    code = main(["attack", "--method", "ig", "--index", "3", "--model", "convnet", "--defense", "soteria",
                 "--adaptive", "--preset", "smoke", "--iters", "4", "--out", str(tmp_path)])
    assert code == 0
    tm = json.loads((tmp_path / "metrics.json").read_text())["threat_model"]
    assert tm["defense"] == "soteria" and tm["defense_param"] == 0.4 and tm["adaptive"] is True


@pytest.mark.parametrize("args, message", [
    (["bench", "--iterations", "2"], "--iterations"),
    (["train-gan", "--steps", "1", "--out", "never.pt", "--lr-d", "0"], "--lr-d must be positive"),
    (["train-gan", "--steps", "1", "--out", "never.pt", "--mode-seeking", "-1"], "--mode-seeking at least 0"),
    (["train-gan", "--steps", "1", "--out", "never.pt", "--mode-seeking", "1", "--batch-size", "1"], "--batch-size 2"),
])
def test_bad_numbers_are_rejected_in_one_line(args, message):
    result = _run(*args)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]


def test_reproduce_with_a_corrupt_prior_fails_before_any_run(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    assert main(["reproduce", "--table", "label_mapping", "--prior", str(bad), "--out", str(out)]) == 1
    assert not out.exists()                           # no record, no table: nothing ran


def test_reproduce_with_a_prior_of_the_wrong_class_count_fails_before_any_run(tmp_path):
    out = tmp_path / "out"                            # table main runs CIFAR-10's ten classes; this prior has five
    assert main(["reproduce", "--table", "main", "--prior", "cifar10-5-strong", "--out", str(out)]) == 1
    assert not out.exists()
