"""One experiment run described by plain data, and sweeps of them written to a JSON-lines file (notebooks 04–09).

A :class:`RunSpec` names everything that decides a result (attack, model, victim images, preset and its
overrides, FL setting, defense, prior, seed); :func:`run_spec` turns it into one record of metrics;
:func:`sweep` runs many, appending each record to a results file the moment it is done, so an interrupted
sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from . import __version__
from .errors import GifdError

__all__ = ["RunSpec", "Context", "run_spec", "apply_overrides", "sweep", "read_records", "is_current",
           "current_records"]


@dataclass
class RunSpec:
    """One attack on one victim batch. ``overrides`` = {"gifd": {"radius": [...]}, ...} changes the preset."""

    method: str
    index: int = 5
    model: str = "resnet18"
    batch_size: int = 1
    preset: str = "laptop"
    seed: int = 0
    trained_model: bool = False
    bn_mode: str = "eval"
    defense: str = "none"
    defense_param: float | None = None
    adaptive: bool = False
    fedavg_steps: int = 0
    fedavg_lr: float = 0.1
    prior: str | None = None      # None: the scenario's prior (cifar10, or cifar10-5 for ood-disjoint)
    scenario: str = "in-distribution"
    label_mapping: str = "none"
    labels_known: bool = False
    select: str = "auto"          # GIFD's stage choice (gifd_lite.attacks.gifd.choose_candidate); other attacks
                                  # ignore it and keep the default
    protocol: int = 2             # 1: made before issue 15's fixes (GIFD's lowest-loss rule, GGL's old budget,
                                  # Soteria's old ε); a record of one protocol never stands in for another
    overrides: dict = field(default_factory=dict)
    tag: str = ""                 # free text naming the table cell, e.g. "radius=0.3"

    def key(self) -> str:
        """A stable identity: the same spec gives the same key (used to resume a sweep)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def of(cls, record: dict) -> "RunSpec":
        """The spec a record was made from (fields added since then take their defaults)."""
        spec = dict(record["spec"])
        if spec.get("prior") == "cifar10" and spec.get("scenario", "in-distribution") == "in-distribution":
            spec["prior"] = None                  # written before the scenario's default prior existed
        if "select" not in spec:                  # written before issue 15's fixes: GIFD chose by the lowest
            spec["protocol"] = 1                  # loss, GGL ran the preset's budget of that time
            if spec["method"] == "gifd":
                spec["select"] = "loss"
            if spec["method"] == "ggl":
                old = spec.get("overrides", {}).get("ggl", {})
                spec["overrides"] = {**spec.get("overrides", {}), "ggl": {
                    "evaluations": _OLD_GGL_EVALUATIONS[spec.get("preset", "laptop")], "popsize": None, **old}}
        return cls(**spec)


_OLD_GGL_EVALUATIONS = {"smoke": 40, "laptop": 1200, "paper": 20_000}   # GGL's presets before issue 15


class Context:
    """Loads each dataset split, prior and trained model once, for every run of a sweep (or a worker)."""

    def __init__(self, device=None):
        from .runtime import resolve_device

        self.device = device if isinstance(device, torch.device) else resolve_device(device or "auto")
        self._cache: dict = {}
        self._updates: OrderedDict = OrderedDict()

    def get(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def client_update(self, key: str, make) -> list[torch.Tensor]:
        """The client's update for ``key``, computed once for the few most recent keys: the attacks of one
        table row (IG, GGL, GIFD; plain and adaptive) see the same update, and Soteria's mask is costly."""
        if key in self._updates:
            self._updates.move_to_end(key)
        else:
            self._updates[key] = make()
            while len(self._updates) > 4:
                self._updates.popitem(last=False)
        return [t.clone() for t in self._updates[key]]

    def dataset(self, scenario: str = "in-distribution", split: str = "test"):
        from .scenarios import task_dataset

        return self.get(("data", scenario, split), lambda: task_dataset(scenario, split))

    def generator(self, name: str):
        from .gan import load_generator

        return self.get(("prior", name), lambda: load_generator(name, device=self.device))

    def judge(self):
        from .gan import load_classifier

        return self.get(("classifier",), lambda: load_classifier("classifier", device=self.device))

    def model(self, name: str, trained: bool, seed: int = 0, num_classes: int = 10):
        from .models import build_model

        if trained:
            if name != "convnet":
                raise GifdError("the shipped trained model is the convnet classifier")
            if num_classes != 10:
                raise GifdError("the shipped trained model is a 10-class CIFAR-10 classifier")
            return self.judge()
        return build_model(name, num_classes=num_classes, seed=seed).to(self.device)


def apply_overrides(preset, overrides: dict):
    """The preset with per-attack fields replaced, lists turned into tuples (JSON gives lists)."""
    changes = {}
    for attack, fields in (overrides or {}).items():
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        changes[attack] = replace(getattr(preset, attack), **values)
    return preset.override(**changes) if changes else preset


def run_spec(spec: RunSpec, context: Context | None = None, with_lpips: bool = True,
             keep_images: bool = False) -> dict:
    """Run one spec and return its record: the spec, the scored metrics, time and versions. With ``keep_images``
    the record also holds ``_pair``: the truth and the matched reconstruction (tensors; :func:`sweep` saves them as
    a PNG and drops them)."""
    from . import data, pipeline
    from .config import get_preset
    from .fl import DEFAULT_DEFENSE_PARAM, ClientUpdate, ThreatModel
    from .label_mapping import map_labels
    from .runtime import seed_everything
    from .scenarios import get_scenario

    context = context or Context()
    seed_everything(spec.seed)
    if "select" in spec.overrides.get("gifd", {}):
        raise GifdError("GIFD's stage choice is RunSpec.select, not an override (the record's key must say it)")
    if spec.protocol != RunSpec.protocol:
        raise GifdError(f"this spec is of protocol {spec.protocol}; the code runs protocol {RunSpec.protocol}")
    preset = apply_overrides(get_preset(spec.preset), spec.overrides)
    preset = preset.override(gifd=replace(preset.gifd, select=spec.select))
    scenario = get_scenario(spec.scenario)
    ds = context.dataset(spec.scenario, "test")
    x, y, indices = data.victim_batch(ds, spec.index, spec.batch_size)
    model = context.model(spec.model, spec.trained_model, num_classes=len(scenario.task_classes))
    param = spec.defense_param if spec.defense_param is not None else DEFAULT_DEFENSE_PARAM.get(spec.defense, 0.0)
    tm = ThreatModel(model=spec.model, trained_model=spec.trained_model, bn_mode=spec.bn_mode, batch_size=len(y),
                     update="fedavg" if spec.fedavg_steps else "fedsgd", fedavg_steps=max(1, spec.fedavg_steps),
                     fedavg_lr=spec.fedavg_lr if spec.fedavg_steps else 0.0, defense=spec.defense, defense_param=param,
                     adaptive=spec.adaptive)
    generative = spec.method in pipeline.GENERATIVE_METHODS
    generator = context.generator(spec.prior or scenario.prior) if generative else None
    t0 = time.perf_counter()
    # what the client sends depends on the client and the defense, not on what the attacker knows
    client = {k: v for k, v in tm.as_dict().items() if k not in ("adaptive", "notes")}
    key = json.dumps([spec.model, spec.trained_model, spec.scenario, indices, spec.seed, client], sort_keys=True)
    update = ClientUpdate(context.client_update(key, lambda: pipeline.observe(model, x, y, tm, seed=spec.seed).tensors), tm)
    mapping = None
    if generative and (spec.label_mapping != "none" or scenario.name != "in-distribution"):
        judge = context.judge() if spec.label_mapping == "model" else None
        judge_classes = [list(judge.classes).index(c) for c in scenario.task_classes] if judge is not None else None
        mapping = lambda labels: map_labels(spec.label_mapping, labels, scenario.task_classes, generator,  # noqa: E731
                                            model=model, update=update.tensors, threat_model=tm, judge=judge,
                                            judge_classes=judge_classes, seed=spec.seed)
    rec = pipeline.run_attack(spec.method, model, update, preset, len(y), seed=spec.seed,
                              labels=y if spec.labels_known else None, generator=generator, label_mapping=mapping)
    record = pipeline.score(rec, x, y, with_lpips=with_lpips)
    used = ([spec.prior or scenario.prior] if generative else []) + \
        (["classifier"] if spec.trained_model or spec.label_mapping == "model" else [])
    record.update(spec=asdict(spec), key=spec.key(), indices=indices, wall_seconds=round(time.perf_counter() - t0, 2),
                  version=__version__, torch=torch.__version__, threads=torch.get_num_threads(),
                  checkpoints={n: _checkpoint_hash(n) for n in used})
    if keep_images:
        record["_pair"] = (x.detach().cpu(), rec.images.detach().cpu().clamp(0, 1)[record["order"]])
    return record


def keep_picture(record: dict, images_dir: str | Path | None) -> dict:
    """Save a record's ``_pair`` (truth above reconstruction) under ``images_dir`` and name the file in the record
    (``reconstruction_png``, relative to ``images_dir``); the tensors never reach the JSON."""
    from .gallery import image_name, save_pair

    pair = record.pop("_pair", None)
    if pair is not None and images_dir is not None:
        record["reconstruction_png"] = save_pair(*pair, Path(images_dir) / image_name(record["key"])).name
    return record


def _checkpoint_hash(name: str) -> str:
    """sha256 of a shipped checkpoint (from data/MANIFEST) or of a checkpoint file."""
    from .gan.checkpoint import read_manifest, sha256

    entry = read_manifest().get(name)
    return entry["sha256"] if entry else sha256(Path(name))


def read_records(path: str | Path) -> list[dict]:
    """Every complete record in a results file (a half-written last line, from a killed run, is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def is_current(record: dict, _hashes: dict | None = None) -> bool:
    """Whether a record still stands for its spec: made by this protocol and with the checkpoints shipped now
    (retraining a prior makes every record made with the old one stale, as a protocol change does)."""
    if RunSpec.of(record).protocol != RunSpec.protocol:
        return False
    hashes = {} if _hashes is None else _hashes
    for name, digest in record.get("checkpoints", {}).items():
        if name not in hashes:
            try:
                hashes[name] = _checkpoint_hash(name)
            except (OSError, GifdError):
                hashes[name] = None
        if hashes[name] != digest:
            return False
    return True


def current_records(path: str | Path) -> dict[str, dict]:
    """Spec key → the last current record (:func:`is_current`) in a results file."""
    hashes: dict = {}
    return {RunSpec.of(r).key(): r for r in read_records(path) if is_current(r, hashes)}


def _untagged(spec: RunSpec) -> str:
    """A spec's identity without the table cell's name: two tables that run this have run the same attack."""
    return json.dumps({k: v for k, v in asdict(spec).items() if k != "tag"}, sort_keys=True)


def reuse_runs_of_other_tables(specs: list[RunSpec], out: str | Path, images_dir: str | Path | None = None) -> int:
    """Append to ``out`` a copy of each run of ``specs`` that another results file in the same folder already
    holds under its own table's tag (every field but ``tag`` equal), marked ``reused_from``, with its picture
    copied into ``images_dir`` (a run whose picture is missing is left to run again); returns how many. IG's and
    GIFD's runs were measured to repeat to the digit in a new process, so a copy is what re-running gives; a GGL
    copy is one of the draws a rerun could give (docs/results, 'How reproducible one run is'), the same draw in
    both tables. ``reproduce --no-reuse`` skips this (copies made earlier stay in the file)."""
    import shutil

    from .gallery import image_name

    out = Path(out)
    done = current_records(out)
    wanted = {_untagged(s): s for s in specs if s.key() not in done}
    copies = []
    for other in sorted(out.parent.glob("*.jsonl")):
        if other == out or not wanted:
            continue
        for record in current_records(other).values():
            spec = wanted.pop(_untagged(RunSpec.of(record)), None)
            if spec is None:
                continue
            copy = {**record, "spec": asdict(spec), "key": spec.key(), "reused_from": other.name}
            copy.pop("reconstruction_png", None)
            if images_dir is not None:                     # the table's gallery needs the picture too
                picture = other.parent / f"{other.stem}_images" / str(record.get("reconstruction_png"))
                if not (record.get("reconstruction_png") and picture.is_file()):
                    continue
                Path(images_dir).mkdir(parents=True, exist_ok=True)
                copy["reconstruction_png"] = shutil.copyfile(picture, Path(images_dir) / image_name(spec.key())).name
            copies.append(copy)
    if copies:
        end_cut_line(out)
        with out.open("a") as fh:
            fh.write("".join(json.dumps(c) + "\n" for c in copies))
    return len(copies)


def end_cut_line(out: Path) -> None:
    """End a results file's last line if a killed run cut it short, so the next record starts a line."""
    if out.exists() and out.stat().st_size and not out.read_bytes().endswith(b"\n"):
        with out.open("a") as fh:
            fh.write("\n")


def sweep(specs: list[RunSpec], out: str | Path, context: Context | None = None, images_dir: str | Path | None = None,
          on_record=None) -> list[dict]:
    """Run every spec not already in ``out`` (JSON lines), appending each record as soon as it is done; with
    ``images_dir`` each run's truth and reconstruction are kept there as a small PNG (:mod:`gifd_lite.gallery`)."""
    from .runtime import progress

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = current_records(out)
    todo = [s for s in specs if s.key() not in done]
    context = context or Context()
    end_cut_line(out)
    for spec in progress(todo, desc=f"sweep ({len(done)} done)"):
        record = keep_picture(run_spec(spec, context, keep_images=images_dir is not None), images_dir)
        with out.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        done[spec.key()] = record
        if on_record is not None:
            on_record(record)
    return [done[s.key()] for s in specs]
