"""The ``privval`` command line."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="privval")
def main() -> None:
    """Differentially private data valuation with rigorous privacy accounting."""


@main.command()
@click.option("--quiet", is_flag=True, help="Print only the result table.")
def demo(quiet: bool) -> None:
    """Value a bundled real dataset with 10% flipped labels and report detection AUROC."""
    from privval.demo import run_demo

    run_demo(progress=not quiet)
