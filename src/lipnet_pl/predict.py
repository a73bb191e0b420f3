"""``python -m lipnet_pl.predict ckpt_path=PATH input=...``: parse images, folders, videos and
live streams (conf/predict.yaml)."""

from lipnet_pl.cli import hydra_command
from lipnet_pl.inference.predict import predict

main = hydra_command("predict", predict)

if __name__ == "__main__":
    main()
