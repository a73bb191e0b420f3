"""LIPDataModule: LIP (or a LIP-format custom dataset) for Lightning, configured from Hydra primitives.

Batches (``batch_size`` is GLOBAL and divided by ``trainer.world_size``):

* train: ``{"image": float [B,3,h,w] normalised, "mask": long [B,h,w] (255 = ignore), "id": [str]}``
* val: ``{"image": float [B,3,h,w] (stretched to crop_size), "mask": [long [H_i,W_i]] at the
  ORIGINAL size, "orig_size": long [B,2], "id": [str]}``
* test / predict (the unlabelled test split): like val without ``"mask"``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from timm.data import IMAGENET_DEFAULT_MEAN as IMAGENET_MEAN
from timm.data import IMAGENET_DEFAULT_STD as IMAGENET_STD
from torch.utils.data import DataLoader

from lipnet_pl.data.classes import ClassInfo
from lipnet_pl.data.dataset import LIPDataset
from lipnet_pl.data.layout import README_HINT, SplitFiles, find_layout
from lipnet_pl.data.transforms import EvalTransform, TrainTransform, _pair, collate_eval

log = logging.getLogger(__name__)

SYNTHETIC_KEYS = (
    "train",
    "val",
    "test",
    "seed",
    "layout",
    "id_files",
    "min_size",
    "max_size",
    "grey_fraction",
)


def _plain(value: Any) -> Any:
    """OmegaConf containers -> plain Python (Hydra passes DictConfig/ListConfig)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, DictConfig | ListConfig):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with hydra
        pass
    return value


def resolve_classes(num_classes: int | None, classes: Mapping | None) -> ClassInfo:
    """ClassInfo from ``data.classes`` (LIP when None), checked against ``data.num_classes``."""
    cfg = dict(_plain(classes) or {})
    if num_classes is not None and "names" not in cfg and "num_classes" not in cfg:
        cfg["num_classes"] = int(num_classes)
    try:
        info = ClassInfo.from_config(cfg)
    except ValueError as err:
        raise ValueError(f"data.classes is invalid: {err}") from err
    if num_classes is not None and int(num_classes) != info.num_classes:
        raise ValueError(
            f"data.num_classes={num_classes} but data.classes describes {info.num_classes} classes "
            f"({list(info.names)}): make them agree"
        )
    return info


class LIPDataModule(L.LightningDataModule):
    """LIP-format data in the official, doubly nested or flat layout (see ``layout.py``).

    ``synthetic`` (keys ``train, val, test, seed, layout, min_size, max_size, ...``) makes
    ``prepare_data`` generate a synthetic LIP-format set at ``root`` when it is missing.
    """

    def __init__(
        self,
        root: str,
        batch_size: int = 16,
        num_workers: int = 2,
        crop_size: int | Sequence[int] = (473, 473),
        scale_range: Sequence[float] = (0.75, 1.25),
        rotation: float = 30.0,
        rotation_p: float = 0.6,
        flip_p: float = 0.5,
        brightness: float = 0.3,
        contrast: float = 0.3,
        saturation: float = 0.3,
        fit: str = "stretch",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        num_classes: int | None = None,
        classes: Mapping | None = None,
        val_batch_size: int | None = None,
        skip_bad: bool = False,
        use_id_files: bool = True,
        pin_memory: bool = False,
        synthetic: Mapping | None = None,
    ):
        super().__init__()
        if root is None or str(root).strip() == "":
            raise ValueError(f"data.root must name a LIP folder, got {root!r}; {README_HINT}")
        self.root = Path(str(root)).expanduser()
        for key, value in (
            ("data.batch_size", batch_size),
            ("data.val_batch_size", val_batch_size),
        ):
            if value is not None and int(value) < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        if int(num_workers) < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {num_workers}")
        self.batch_size = int(batch_size)
        self.val_batch_size = None if val_batch_size is None else int(val_batch_size)
        self.num_workers = int(num_workers)
        self.crop_size = _pair(_plain(crop_size), "data.crop_size")
        self.mean = tuple(float(m) for m in _plain(mean))
        self.std = tuple(float(s) for s in _plain(std))
        self.classes = resolve_classes(num_classes, classes)
        self.num_classes = self.classes.num_classes
        self.skip_bad = bool(skip_bad)
        self.use_id_files = bool(use_id_files)
        self.pin_memory = bool(pin_memory)
        self.synthetic = dict(_plain(synthetic) or {})
        unknown = sorted(set(self.synthetic) - set(SYNTHETIC_KEYS))
        if unknown:
            raise ValueError(
                f"unknown key(s) data.synthetic.{unknown}: allowed {list(SYNTHETIC_KEYS)}"
            )
        try:
            self.train_transform, self.eval_transform = self._transforms(
                scale_range, rotation, rotation_p, flip_p, brightness, contrast, saturation, fit
            )
        except ValueError as err:
            raise ValueError(f"invalid data.* augmentation setting: {err}") from err
        self.per_device_batch_size = self.batch_size
        self.train_dataset: LIPDataset | None = None
        self.val_dataset: LIPDataset | None = None
        self.test_dataset: LIPDataset | None = None

    def _transforms(
        self, scale_range, rotation, rotation_p, flip_p, brightness, contrast, saturation, fit
    ) -> tuple[TrainTransform, EvalTransform]:
        train = TrainTransform(
            crop_size=self.crop_size,
            flip_permutation=self.classes.flip_permutation,
            scale_range=tuple(_plain(scale_range)),
            rotation=float(rotation),
            rotation_p=float(rotation_p),
            flip_p=float(flip_p),
            brightness=brightness,
            contrast=contrast,
            saturation=saturation,
            mean=self.mean,
            std=self.std,
            fit=fit,
            ignore_index=self.classes.ignore_index,
        )
        return train, EvalTransform(self.crop_size, self.mean, self.std)

    # ----------------------------------------------------------------- preparation
    def prepare_data(self) -> None:
        """Generate the synthetic set when configured and ``root`` is missing, empty or stale.

        Stale = generated by this project with other ``data.synthetic`` settings or an older
        generator (its ``synthetic.json`` differs). A folder without that marker is never touched.
        """
        if not self.synthetic:
            return
        from lipnet_pl.data.synthetic import generate, is_current

        if self.root.is_dir() and any(self.root.iterdir()):
            current = is_current(self.root, **self.synthetic)
            if current is None or current:
                return
            log.info("data.synthetic settings changed: regenerating %s", self.root)
        generate(self.root, overwrite=True, progress=True, **self.synthetic)

    def _per_device(self, global_size: int, key: str) -> int:
        world = int(getattr(self.trainer, "world_size", 1) or 1) if self.trainer is not None else 1
        if global_size % world:
            raise ValueError(
                f"{key}={global_size} is the GLOBAL batch size and must be divisible by the "
                f"{world} devices (trainer.world_size): use a multiple of {world}"
            )
        return global_size // world

    def setup(self, stage: str | None = None) -> None:
        self.per_device_batch_size = self._per_device(self.batch_size, "data.batch_size")
        if self.val_batch_size is not None:
            self.per_device_val_batch_size = self._per_device(
                self.val_batch_size, "data.val_batch_size"
            )
        else:
            self.per_device_val_batch_size = self.per_device_batch_size
        layout = find_layout(self.root, use_id_files=self.use_id_files)
        if stage in (None, "fit"):
            self.train_dataset = LIPDataset(
                self._split(layout, "train"), self.train_transform, skip_bad=self.skip_bad
            )
        if stage in (None, "fit", "validate"):
            self.val_dataset = LIPDataset(
                self._split(layout, "val"), self.eval_transform, skip_bad=self.skip_bad
            )
        if stage in ("test", "predict") or (stage is None and "test" in layout):
            self.test_dataset = LIPDataset(
                self._split(layout, "test"),
                self.eval_transform,
                with_labels=False,
                skip_bad=self.skip_bad,
            )

    def _split(self, layout: dict[str, SplitFiles], split: str) -> SplitFiles:
        if split not in layout or not layout[split].ids:
            folder = {"train": "train_images", "val": "val_images", "test": "testing_images"}[split]
            raise FileNotFoundError(
                f"LIP root {self.root} (data.root) has no {split} split: no {folder}/ folder with images "
                f"found; {README_HINT}"
            )
        return layout[split]

    # ----------------------------------------------------------------- loaders
    def _loader(
        self, dataset: LIPDataset | None, name: str, batch_size: int, train: bool
    ) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{name}_dataloader() called before setup(): call dm.setup() first")
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            drop_last=train and len(dataset) > batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=None if train else collate_eval,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, "train", self.per_device_batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, "val", self.per_device_val_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, "test", self.per_device_val_batch_size, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(
            self.test_dataset, "predict", self.per_device_val_batch_size, train=False
        )
