"""The official CoOp formulation of one seed's run, for `coop bench`'s whole-job comparison.

What the CoOp code does per run: sample the few-shot subset, load CLIP, and at every training step load the
step's images, augment them, encode them with the (frozen) image encoder and run the text encoder on all 77
tokens of every class prompt; evaluation recomputes the class text features for every test batch beside the
test images' features; fp32; one run (process) per seed. Everything else is ours, so that both formulations
train the same thing: the same subset (coop.data.fewshot), the same augmented pixels (image i's view at epoch
e is coop.views.augment's, seeded by subset, epoch and index), the same initialisation, batch order, optimiser
and schedule (`coop.train.fit` with the TrainConfig of coop.methods.coop).

Run as a process: `python -m coop.bench.official --dataset toy_shapes --shots 4 --seed 1 ...` prints one JSON
line with its phases' wall times (load, train, eval), the number of steps and the accuracy.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from coop.data.images import load_image
from coop.models.prompt import CoOpClassifier, PromptLearner
from coop.views import augment


class StepImages:
    """The training images, loaded and augmented per step (`coop.train.fit` calls `set_epoch`, then `batch`
    per step); counts the steps it served."""

    def __init__(self, root: str | Path, items: list, transform, subset: str):
        self.root, self.items, self.transform, self.subset = Path(root), items, transform, subset
        self.labels = torch.tensor([it.label for it in items], dtype=torch.long)
        self.epoch, self.steps = None, 0

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.steps += 1
        x = torch.cat([augment([load_image(self.root / self.items[i].path)], self.transform, self.subset,
                               self.epoch, i) for i in idx.tolist()])
        return x, self.labels[idx]


def official_classifier(clip, classnames: list[str], seed: int, n_ctx: int) -> CoOpClassifier:
    """CoOp with the image encoder in the model and the text encoder on all 77 tokens (no cut, no shared
    prefix); initialised as ours (torch.manual_seed(seed) before the prompt learner)."""
    torch.manual_seed(seed)
    learner = PromptLearner(clip.model, clip.tokenizer, classnames, n_ctx)
    return CoOpClassifier(clip.model, learner, cut_text=False, share_prefix=False)


@torch.no_grad()
def official_predict(clf: CoOpClassifier, root: str | Path, items: list, transform, batch: int) -> torch.Tensor:
    """Predicted classes of `items`, `batch` test images at a time: each batch encodes its images and
    recomputes the class text features (the official evaluation)."""
    clf.eval()
    preds = []
    for start in range(0, len(items), batch):
        x = torch.stack([transform(load_image(Path(root) / it.path)) for it in items[start:start + batch]])
        preds.append(clf(x).argmax(1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def official_run(*, dataset: str, shots: int, seed: int, backbone: str, pretrained: str, data_root: str | Path,
                 params: dict[str, Any], test_batch: int = 100) -> dict[str, Any]:
    """One seed's run in the official formulation: phases' wall times, steps, accuracy, the learned context."""
    from coop.config import build_config
    from coop.data.datasets import get_dataset, image_root, read_split
    from coop.data.fewshot import make_manifest, manifest_items
    from coop.methods.coop import CoOpConfig
    from coop.methods.registry import get_method
    from coop.models.clip import load_clip
    from coop.models.transforms import test_transform, train_transform
    from coop.train import TrainConfig, fit, resolve_epochs

    start = time.perf_counter()
    spec = get_dataset(dataset)
    cfg: CoOpConfig = build_config(get_method("coop").config, params)
    split = read_split(data_root, spec)
    manifest = make_manifest(dataset, split, shots, seed)
    items = manifest_items(manifest, "train")
    clip = load_clip(backbone, pretrained, device="cpu")
    clf = official_classifier(clip, split.classnames, seed, cfg.n_ctx)
    root = image_root(data_root, spec)
    tcfg = TrainConfig(epochs=resolve_epochs(cfg.epochs, cfg.epoch_scale, shots, spec.name),
                       batch_size=cfg.batch_size, lr=cfg.lr)
    data = StepImages(root, items, train_transform(clip.preprocess, cfg.crop_min), manifest["hash"])
    loaded = time.perf_counter()
    history = fit(clf.train(), [clf.learner.ctx], data, tcfg, generator=torch.Generator().manual_seed(seed), log=None)
    trained = time.perf_counter()
    pred = official_predict(clf, root, split.test, test_transform(clip.preprocess), test_batch)
    labels = torch.tensor([it.label for it in split.test])
    done = time.perf_counter()
    return {"seed": seed, "load_s": loaded - start, "train_s": trained - loaded, "eval_s": done - trained,
            "total_s": done - start, "steps": data.steps, "epochs": tcfg.epochs, "batch_size": tcfg.batch_size,
            "accuracy": round(float((pred == labels).double().mean() * 100), 4), "final_loss": history[-1],
            "ctx": clf.learner.ctx.detach().clone()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m coop.bench.official", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--shots", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--backbone", required=True)
    p.add_argument("--pretrained", default="random")
    p.add_argument("--data-root", required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="CoOp parameters, as coop run")
    p.add_argument("--test-batch", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    from coop.config import parse_sets

    torch.set_num_threads(a.threads)
    r = official_run(dataset=a.dataset, shots=a.shots, seed=a.seed, backbone=a.backbone, pretrained=a.pretrained,
                     data_root=a.data_root, params=parse_sets(a.set), test_batch=a.test_batch)
    r.pop("ctx")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
