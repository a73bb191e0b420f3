"""Small misreports (issue 28, item 10): ``data.root`` that is a file, ``export opset=`` beyond
what the exporter writes."""

from __future__ import annotations

import pytest

from lipnet_pl.config import compose
from lipnet_pl.data.layout import find_layout
from lipnet_pl.errors import UserError
from lipnet_pl.exporting.export import check_export_config


def test_a_data_root_that_is_a_file_says_so(tmp_path):
    root = tmp_path / "LIP.zip"
    root.write_bytes(b"PK")
    with pytest.raises(FileNotFoundError, match=r"LIP\.zip \(config key data.root\) is a file"):
        find_layout(root, key="data.root")


def test_an_opset_the_exporter_cannot_write_is_refused(tmp_path):
    cfg = compose("export", [f"paths.output_dir={tmp_path}", "ckpt_path=x", "opset=99"])
    with pytest.raises(UserError, match=r"opset=99: use an ONNX opset from 17 to \d+"):
        check_export_config(cfg)
