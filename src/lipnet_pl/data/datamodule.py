"""LIPDataModule: LIP (or a LIP-format custom dataset) for Lightning, configured from Hydra primitives.

Batches (``batch_size`` is GLOBAL and divided by ``trainer.world_size``):

* train: ``{"image": float [B,3,h,w] normalised, "mask": uint8 [B,h,w] (255 = ignore), "id": [str]}``;
  with ``augment_on=device`` the loader yields ``{"image": uint8, "mask": uint8, "aug": float
  [B,10], "id"}`` at ``crop_size`` and :attr:`LIPDataModule.device_augment` turns it into the
  above on the device (the LightningModule calls it in ``on_after_batch_transfer``);
* val: ``{"image": float [B,3,h,w] (stretched to crop_size), "mask": [uint8 [H_i,W_i]] at the
  ORIGINAL size, "orig_size": long [B,2], "id": [str]}``
* test / predict (the unlabelled test split): like val without ``"mask"``.

Masks stay uint8 until they are on the device (the LightningModule widens them): 1/8 of the
bytes of int64 through the worker queues and the host-to-device copy.

The training order and every sample's augmentation are functions of ``(seed, epoch, position)``
(:mod:`lipnet_pl.data.sampling`) and the data module's checkpoint state records how far the
current epoch got, so a run resumed from any checkpoint, even one written mid-epoch, sees the
same batches as the uninterrupted run. Under DDP the module shards train and val itself
(``trainer.use_distributed_sampler`` must stay false, as in ``conf/trainer/default.yaml``).
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from timm.data import IMAGENET_DEFAULT_MEAN as IMAGENET_MEAN
from timm.data import IMAGENET_DEFAULT_STD as IMAGENET_STD
from torch.utils.data import DataLoader, DistributedSampler

from lipnet_pl.config import plain
from lipnet_pl.data.classes import ClassInfo
from lipnet_pl.data.dataset import BAD_LABELS, LIPDataset
from lipnet_pl.data.device_augment import AUGMENT_ON, DeviceAugment, WorkerSide
from lipnet_pl.data.layout import README_HINT, SplitFiles, find_layout, missing_split_message
from lipnet_pl.data.sampling import EpochSampler, ResumableLoader
from lipnet_pl.data.synthetic import generate, is_current, synthetic_defaults
from lipnet_pl.data.transforms import EvalTransform, TrainTransform, _pair, collate_eval
from lipnet_pl.data.workers import WorkerInit, worker_context

log = logging.getLogger(__name__)


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (waiting for it): every rank of an ``srun``
    (and every job of a sweep) calls ``prepare_data``, one at a time, so the first generates and
    the others find the data current. A filesystem without locks runs the block unlocked."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as err:  # ENOSYS / EOPNOTSUPP / ENOLCK (some network filesystems)
            log.warning("cannot lock %s (%s): preparing the data unlocked", lock_file, err)
        yield


def resolve_classes(num_classes: int | None, classes: Mapping | None) -> ClassInfo:
    """ClassInfo from ``data.classes`` (LIP when None), checked against ``data.num_classes``."""
    cfg = dict(plain(classes) or {})
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

    ``augment`` holds the :class:`~lipnet_pl.data.transforms.TrainTransform` settings (scale,
    rotation, flip with left/right swap, colour jitter, fit); ``augment_on`` says where they
    run: ``workers`` (the loader workers, float32 out), ``device`` (workers decode and resize,
    the batch is augmented where the model is: :mod:`~lipnet_pl.data.device_augment`) or
    ``auto`` (device when the trainer's device is not the CPU).

    ``synthetic`` (keys ``train, val, test, seed, layout, min_size, max_size, ...``) makes
    ``prepare_data`` generate a synthetic LIP-format set at ``root`` when it is missing.
    """

    def __init__(
        self,
        root: str,
        batch_size: int = 16,
        num_workers: int = 2,
        crop_size: int | Sequence[int] = (473, 473),
        augment: Mapping[str, Any] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        num_classes: int | None = None,
        classes: Mapping | None = None,
        val_batch_size: int | None = None,
        skip_bad: bool = False,
        use_id_files: bool = True,
        pin_memory: bool | str = "auto",
        synthetic: Mapping | None = None,
        seed: int = 0,
        bad_labels: str = "error",
        augment_on: str = "auto",
    ):
        super().__init__()
        if augment_on not in AUGMENT_ON:
            raise ValueError(f"data.augment_on={augment_on!r}: use one of {list(AUGMENT_ON)}")
        self.augment_on = augment_on
        self.device_augment: DeviceAugment | None = None
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
        self.crop_size = _pair(plain(crop_size), "data.crop_size")
        self.mean = tuple(float(m) for m in plain(mean))
        self.std = tuple(float(s) for s in plain(std))
        self.classes = resolve_classes(num_classes, classes)
        self.num_classes = self.classes.num_classes
        self.skip_bad = bool(skip_bad)
        if bad_labels not in BAD_LABELS:
            raise ValueError(f"data.bad_labels={bad_labels!r}: use one of {list(BAD_LABELS)}")
        self.bad_labels = bad_labels
        self.use_id_files = bool(use_id_files)
        if pin_memory not in (True, False, "auto"):
            raise ValueError(f"data.pin_memory must be true, false or auto, got {pin_memory!r}")
        self.pin_memory = pin_memory
        self.seed = int(seed or 0)
        self._resume: dict[str, int] | None = None
        self.synthetic = dict(plain(synthetic) or {})
        unknown = sorted(set(self.synthetic) - set(synthetic_defaults()))
        if unknown:
            raise ValueError(
                f"unknown key(s) data.synthetic.{unknown}: allowed {list(synthetic_defaults())}"
            )
        try:
            self.train_transform = TrainTransform(
                crop_size=self.crop_size,
                flip_permutation=self.classes.flip_permutation,
                mean=self.mean,
                std=self.std,
                ignore_index=self.classes.ignore_index,
                **dict(plain(augment) or {}),
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"invalid data.augment setting: {err}") from err
        self.eval_transform = EvalTransform(self.crop_size, self.mean, self.std)
        self.per_device_batch_size = self.batch_size
        self.train_dataset: LIPDataset | None = None
        self.val_dataset: LIPDataset | None = None
        self.test_dataset: LIPDataset | None = None

    # ----------------------------------------------------------------- preparation
    def prepare_data(self) -> None:
        """Generate the synthetic set when configured and ``root`` is missing, empty or stale.

        Stale = generated by this project with other ``data.synthetic`` settings or an older
        generator (its ``synthetic.json`` differs). A folder without that marker is never touched.
        """
        if not self.synthetic:
            return
        with exclusive(self.root.parent / f".{self.root.name}.lock"):  # srun: N ranks at once
            self._prepare_synthetic()

    def _prepare_synthetic(self) -> None:
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
        checked = {
            "num_classes": self.num_classes,
            "ignore_index": self.classes.ignore_index,
            "bad_labels": self.bad_labels,
        }
        if stage in (None, "fit"):
            on_device = self.resolved_augment_on() == "device"
            self.device_augment = DeviceAugment(self.train_transform) if on_device else None
            self.train_dataset = LIPDataset(
                self._split(layout, "train"),
                WorkerSide(self.train_transform) if on_device else self.train_transform,
                skip_bad=self.skip_bad,
                seed=self.seed,
                **checked,
            )
        if stage in (None, "fit", "validate"):
            self.val_dataset = LIPDataset(
                self._split(layout, "val"), self.eval_transform, skip_bad=self.skip_bad, **checked
            )
        if stage in ("test", "predict") or (stage is None and "test" in layout):
            self.test_dataset = LIPDataset(
                self._split(layout, "test"),
                self.eval_transform,
                with_labels=False,
                skip_bad=self.skip_bad,
            )

    def resolved_augment_on(self) -> str:
        """``workers`` or ``device``: ``auto`` is device when the trainer runs on an accelerator."""
        if self.augment_on != "auto":
            return self.augment_on
        device = getattr(getattr(self.trainer, "strategy", None), "root_device", None)
        return "device" if device is not None and device.type != "cpu" else "workers"

    def _split(self, layout: dict[str, SplitFiles], split: str) -> SplitFiles:
        if split not in layout or not layout[split].ids:
            raise FileNotFoundError(missing_split_message(self.root, "data.root", split))
        return layout[split]

    # ----------------------------------------------------------------- loaders
    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        connector = getattr(trainer, "_accelerator_connector", None)
        if trainer.world_size > 1 and getattr(connector, "use_distributed_sampler", False):
            raise ValueError(
                "trainer.use_distributed_sampler=true: LIPDataModule shards the data over ranks "
                "itself (resumable order, no double counting in validation); set it to false"
            )
        return int(trainer.world_size), int(getattr(trainer, "global_rank", 0))

    def _pin(self) -> bool:
        if self.pin_memory != "auto":
            return bool(self.pin_memory)
        trainer = self.trainer
        device = getattr(getattr(trainer, "strategy", None), "root_device", None)
        return device is not None and device.type == "cuda"

    def _loader(self, dataset: LIPDataset | None, name: str, batch_size: int, train: bool):
        if dataset is None:
            raise RuntimeError(f"{name}_dataloader() called before setup(): call dm.setup() first")
        world, rank = self._world()
        if train:
            sampler = EpochSampler(
                len(dataset), shuffle=True, seed=self.seed, num_replicas=world, rank=rank
            )
            if self._resume is not None:
                sampler.resume(self._resume["epoch"], self._resume["samples_done"])
                self._resume = None
        elif world > 1:  # padded duplicates are masked in validation (padded_sample_mask)
            sampler = DistributedSampler(dataset, world, rank, shuffle=False)
        else:
            sampler = None
        loader = ResumableLoader if train else DataLoader
        extra = {"position": self.state_dict} if train else {}
        return loader(
            dataset,
            **extra,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=train and len(sampler or dataset) > batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=WorkerInit(rank) if self.num_workers > 0 else None,
            multiprocessing_context=worker_context() if self.num_workers > 0 else None,
            pin_memory=self._pin(),
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

    # ----------------------------------------------------------------- resume position
    def state_dict(self) -> dict[str, int]:
        """Where training is in its epoch (saved in every checkpoint by Lightning)."""
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return {}
        done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        epoch = int(trainer.current_epoch)
        if done >= trainer.num_training_batches:  # an epoch-end checkpoint: next epoch, fresh
            epoch, done = epoch + 1, 0
        return {"epoch": epoch, "samples_done": done * self.per_device_batch_size}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        if state_dict and "epoch" in state_dict:
            self._resume = {
                "epoch": int(state_dict["epoch"]),
                "samples_done": int(state_dict["samples_done"]),
            }
