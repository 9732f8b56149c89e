"""How much the class code alone can buy at GIFD's latent stage; writes docs/results/mapping_headroom.md.

    GIFD_DATA=../shared/data .venv/bin/python tools/measure_mapping_headroom.py [--prior NAME] [--in-class] [--report]

``--report`` rewrites the page from the committed rows (docs/results/runs/mapping_headroom.json) without
fitting anything. ``--prior`` measures another 5-class prior (issue 17: ``cifar10-5-strong``) into
``mapping_headroom_<prior>.md`` and ``runs/mapping_headroom_<prior>.json``; the default is the scenario's prior.

Class-disjoint scenario (the `label_mapping` table's ten images: every 500th test image of dog, frog, horse,
ship, truck) and the 5-class prior `cifar10-5`. For each image and each GAN class c, the *oracle* latent fit
`gifd_lite.gan.analysis.fit_to_image` optimises z against the true pixels (4 restarts x 300 Adam steps): the
PSNR of the best G(z, c) is the ceiling of the latent stage when G is conditioned on c. No FL model is
involved: this bounds what any label mapping can do at the latent stage, whatever the attacked model.

``--in-class`` is the control (``mapping_headroom_in_class_<prior>.md``): the same fits on ten test images of the
prior's *own* classes (the same positions, every 500th image of those classes), where the right class code is
known: how much the class code moves the latent stage's pixel fit when the image belongs to one of the prior's
classes, the reference for the class-disjoint spread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gifd_lite import data  # noqa: E402
from gifd_lite.gan import load_generator  # noqa: E402
from gifd_lite.gan.analysis import fit_to_image  # noqa: E402
from gifd_lite.label_mapping import oracle_class  # noqa: E402
from gifd_lite.reproduce import mean_ci, table_specs  # noqa: E402
from gifd_lite.runtime import seed_everything  # noqa: E402
from gifd_lite.scenarios import get_scenario, task_dataset  # noqa: E402

STEPS, RESTARTS = 300, 4


def _pm(values: list[float]) -> str:
    m, h = mean_ci(values)
    return f"{m:.2f} ± {h:.2f}"


def measure(prior: str, in_class: bool = False) -> tuple[list[dict], list[str]]:
    """Fit every image under every class code: the per-image rows and the prior's class names."""
    seed_everything(0)
    scenario = get_scenario("ood-disjoint")
    G = load_generator(prior)
    # in-class: the prior's own classes, FL label i = GAN class i, so `none` and `oracle` are both the true class
    clients = data.subset_classes(data.load_cifar10("test"), list(G.classes)) if in_class else task_dataset(scenario)
    names = list(G.classes) if in_class else list(scenario.task_classes)
    indices = sorted({s.index for s in table_specs("label_mapping", "laptop", images=10)})
    pairs = [data.victim_batch(clients, index, 1)[:2] for index in indices]
    x = torch.cat([p[0] for p in pairs])
    y = [int(p[1]) for p in pairs]
    k, n = len(G.classes), len(indices)

    def fit(code, learn_code=False):
        return fit_to_image(G, x, code, stages=(0,), steps=STEPS, restarts=RESTARTS, seed=0,
                            learn_code=learn_code)["latent"]

    per_class = [fit(torch.full((n,), c))["psnr_per_image"] for c in range(k)]
    soft = fit(torch.full((n, k), 1.0 / k), learn_code=True)
    rows = [{"index": index, "fl_class": names[y[i]], "none": y[i],
             "oracle": y[i] if in_class else oracle_class(names[y[i]], G.classes),
             "psnr": [per_class[c][i] for c in range(k)], "soft": soft["psnr_per_image"][i],
             "soft_code": [round(float(v), 3) for v in soft["code"][i]]} for i, index in enumerate(indices)]
    return rows, list(G.classes)


def report(rows: list[dict], classes: list[str], prior: str, default: bool, in_class: bool = False) -> list[str]:
    """The page's lines, from the per-image rows (with a ``quote`` block for gifd_lite.results)."""
    k = len(classes)
    flag = ("" if default else f" --prior {prior}") + (" --in-class" if in_class else "")
    title = ("# The latent stage's ceiling under each class code, on the prior's own classes (the control): "
             f"`{prior}`" if in_class else
             "# The latent stage's ceiling under each class code (class-disjoint)" + ("" if default else f": `{prior}`"))
    lines = [title, "", f"Regenerate: `GIFD_DATA=../shared/data .venv/bin/python tools/measure_mapping_headroom.py{flag}`", ""]
    if in_class:
        lines += [f"The control for `mapping_headroom_{prior}.md`: the same oracle pixel fit of the latent z of the "
                  f"prior `{prior}` (`fit_to_image`, {RESTARTS} restarts × {STEPS} Adam steps), once per GAN class c, "
                  "but on ten test images of the prior's own classes (every 500th image of those classes), so the "
                  "right class code is known: `none` and `oracle` are both the true class. PSNR (dB) of the best "
                  "G(z, c). How far the true class beats the others here measures how much this prior's class "
                  "code moves the latent stage's pixel fit when the image belongs to one of its classes."]
    else:
        lines += [f"Oracle pixel fit of the latent z of the 5-class prior `{prior}` (`fit_to_image`, {RESTARTS} "
                  f"restarts × {STEPS} Adam steps) to each of the `label_mapping` table's ten client images, once per "
                  "GAN class c. PSNR (dB) of the best G(z, c): the most the latent stage can reach with that class "
                  "code, whatever the attacked model. `none` conditions on the FL label's index (dog → airplane, …), "
                  "`oracle` on the semantic neighbour; `best` is the best of the five classes for that image (an "
                  "ideal hard mapping); `soft` optimises the class mixture softmax(a) with z from the uniform "
                  "mixture (the soft mapping's ceiling; its arg-max class in the last column)."]
    lines += ["", f"| image | {'class' if in_class else 'FL class'} | " + " | ".join(classes) +
              " | soft | none | oracle | best class | soft's top class |", "|---|---|" + "---|" * (k + 5)]
    for r in rows:
        best = max(range(k), key=r["psnr"].__getitem__)
        cells = " | ".join(f"{p:.2f}" for p in r["psnr"])
        top = max(range(k), key=r["soft_code"].__getitem__)
        lines.append(f"| {r['index']} | {r['fl_class']} | {cells} | {r['soft']:.2f} | {classes[r['none']]} | "
                     f"{classes[r['oracle']]} | {classes[best]} | {classes[top]} |")
    none = [r["psnr"][r["none"]] for r in rows]
    oracle = [r["psnr"][r["oracle"]] for r in rows]
    best = [max(r["psnr"]) for r in rows]
    soft = [r["soft"] for r in rows]
    spread = [max(r["psnr"]) - min(r["psnr"]) for r in rows]
    above_worst = [r["psnr"][r["oracle"]] - min(r["psnr"]) for r in rows]
    who = "true" if in_class else "oracle's"
    oracle_is_best = sum(r["oracle"] == max(range(k), key=r["psnr"].__getitem__) for r in rows)
    lines += ["", "Mean ± 95% t-CI over the ten images:", "",
              "| class code | latent ceiling (dB) | minus `none`, paired |", "|---|---|---|",
              f"| none ({'the true class' if in_class else 'FL label index'}) | {_pm(none)} | |",
              f"| oracle ({'the true class' if in_class else 'semantic neighbour'}) | {_pm(oracle)} | "
              f"{_pm([o - n for o, n in zip(oracle, none)])} |",
              f"| best of the {k} classes | {_pm(best)} | {_pm([b - n for b, n in zip(best, none)])} |",
              f"| soft (learned mixture) | {_pm(soft)} | {_pm([s - n for s, n in zip(soft, none)])} |", "",
              f"Best minus worst class on the same image: {_pm(spread)} dB; the {who} class minus the worst: "
              f"{_pm(above_worst)} dB. The {who} class is the best class on {oracle_is_best} of {len(rows)} images."]
    quotes = {"n": len(rows), "best minus worst": mean_ci(spread)[0], "best minus worst ci": mean_ci(spread)[1],
              "oracle minus worst": mean_ci(above_worst)[0], "oracle minus worst ci": mean_ci(above_worst)[1],
              "oracle is best": oracle_is_best}
    for name, vals in (("none", none), ("oracle", oracle), ("best", best), ("soft", soft)):
        quotes[f"{name}"], quotes[f"{name} ci"] = mean_ci(vals)
        if name != "none":
            d = mean_ci([v - n for v, n in zip(vals, none)])
            quotes[f"{name} - none"], quotes[f"{name} - none ci"] = d
    lines += ["", "Quotable values (`gifd_lite.results`; `X - none` is paired on the same images):", "", "```quote"]
    lines += [f"{key}: {v:.6f}" if isinstance(v, float) else f"{key}: {v}" for key, v in quotes.items()] + ["```"]
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--report", action="store_true", help="only rewrite the page from the committed rows")
    parser.add_argument("--prior", help="a 5-class prior (default: the class-disjoint scenario's, cifar10-5)")
    parser.add_argument("--in-class", action="store_true", help="the control: images of the prior's own classes")
    args = parser.parse_args()
    out = ROOT / "docs" / "results"
    default_prior = get_scenario("ood-disjoint").prior
    prior = args.prior or default_prior
    default = prior == default_prior
    stem = "mapping_headroom" if default else f"mapping_headroom_{prior}"
    if args.in_class:
        stem = f"mapping_headroom_in_class_{prior}"
    if args.report:
        from gifd_lite.gan.checkpoint import read_manifest

        rows = json.loads((out / "runs" / f"{stem}.json").read_text())
        classes = read_manifest()[prior]["classes"]
    else:
        rows, classes = measure(prior, args.in_class)
        (out / "runs").mkdir(exist_ok=True)
        (out / "runs" / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = report(rows, classes, prior, default, args.in_class)
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
