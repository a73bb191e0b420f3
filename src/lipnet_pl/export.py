"""``python -m lipnet_pl.export ckpt_path=PATH format=onnx|torchscript|pretrained``: export a
saved model and check it against PyTorch (conf/export.yaml)."""

from lipnet_pl.cli import hydra_command
from lipnet_pl.exporting.export import export

main = hydra_command("export", export)

if __name__ == "__main__":
    main()
