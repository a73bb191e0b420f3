"""Packaging glue that pyproject.toml cannot express: the top-level ``conf/`` folder ships inside
the wheel as the package ``lipnet_pl.conf``, so installed copies find their Hydra configs; the
``hydra_plugins`` namespace carries the name Hydra requires of our SLURM launcher."""

from setuptools import find_namespace_packages, find_packages, setup

CONF = ["lipnet_pl.conf", *(f"lipnet_pl.conf.{p}" for p in find_namespace_packages("conf"))]

setup(
    packages=find_packages("src") + find_namespace_packages("src", include=["hydra_plugins"]) + CONF,
    package_dir={"": "src", "lipnet_pl.conf": "conf"},
    package_data={package: ["*.yaml"] for package in CONF},
)
