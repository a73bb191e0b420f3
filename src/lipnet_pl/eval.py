"""``python -m lipnet_pl.eval ckpt_path=PATH [data.root=DIR] [tta=flip]``: standard LIP metrics
of a saved model (conf/eval.yaml)."""

from omegaconf import DictConfig

from lipnet_pl.cli import hydra_command
from lipnet_pl.evaluation.evaluate import evaluate, report


def evaluate_and_report(cfg: DictConfig) -> dict:
    results = evaluate(cfg)
    report(results, cfg.get("output") or cfg.paths.output_dir)
    return results


main = hydra_command("eval", evaluate_and_report)

if __name__ == "__main__":
    main()
