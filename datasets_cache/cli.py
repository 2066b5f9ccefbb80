"""``data`` command group: list, fetch, verify and locate cached datasets.

The main CLI adds it with ``from datasets_cache.cli import data; cli.add_command(data)``.
"""

from __future__ import annotations

import json
import sys

import click

from datasets_cache import cache, registry, store
from datasets_cache.errors import DatasetError


def _names(names: tuple[str, ...], all_: bool) -> list[str]:
    if all_:
        return [info.name for info in registry.list_datasets()]
    if not names:
        raise click.UsageError("name at least one dataset, or pass --all")
    try:
        for n in names:
            registry.get_info(n)
    except DatasetError as e:
        raise click.BadParameter(str(e), param_hint="NAME") from None
    return list(names)


@click.group()
def data() -> None:
    """Datasets: list, fetch into the cache, verify checksums, show paths."""


@data.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def list_cmd(as_json: bool) -> None:
    """List every built-in dataset: kind, size, whether it is cached, sources."""
    rows = []
    for info in registry.list_datasets():
        path = str(cache.dataset_path(info.name))
        rows.append({**info.to_json(), "cached": store.is_cached(info.name), "path": path})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"cache: {cache.data_dir()}")
    click.echo(f"{'name':<14} {'kind':<6} {'cached':<7} {'size':<38} source")
    for r in rows:
        cached = "yes" if r["cached"] else "no"
        click.echo(f"{r['name']:<14} {r['kind']:<6} {cached:<7} {r['size']:<38} {r['sources'][0]}")


@data.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Fetch every built-in dataset.")
@click.option("--tfds-data-dir", default=None, help="Data dir of prepared TFDS datasets (for tfds:NAME).")
def fetch_cmd(names: tuple[str, ...], all_: bool, tfds_data_dir: str | None) -> None:
    """Fetch NAMES (or --all) into the cache; exit 1 if any fails."""
    from tqdm.auto import tqdm

    failed = []
    todo = _names(names, all_)
    with tqdm(todo, desc="datasets", unit="dataset", file=sys.stderr) as bar:
        for name in bar:
            bar.set_postfix_str(name)
            try:
                path = store.fetch(name, progress=False, tfds_data_dir=tfds_data_dir)
            except DatasetError as e:
                failed.append(name)
                tqdm.write(f"FAILED {name}: {e}", file=sys.stderr)
            else:
                tqdm.write(f"ok {name}: {path}")
    if failed:
        raise click.exceptions.Exit(1)


@data.command("verify")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Verify every built-in dataset.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object {name: {ok, message}}.")
def verify_cmd(names: tuple[str, ...], all_: bool, as_json: bool) -> None:
    """Check cached NAMES (default: all) against their sha256; exit 1 if any is missing or corrupt."""
    todo = _names(names, all_ or not names)
    results = {n: store.verify(n) for n in todo}
    if as_json:
        click.echo(json.dumps({n: {"ok": ok, "message": msg} for n, (ok, msg) in results.items()}, indent=2))
    else:
        for ok, msg in results.values():
            click.echo(msg)
    if not all(ok for ok, _ in results.values()):
        raise click.exceptions.Exit(1)


@data.command("path")
@click.argument("name")
def path_cmd(name: str) -> None:
    """Print the cache directory of NAME (which may not exist yet); an unknown NAME is a usage error."""
    try:
        registry.get_info(name)  # a name the toolkit does not know has no place in the cache
        click.echo(str(cache.dataset_path(name)))
    except DatasetError as e:
        raise click.BadParameter(str(e), param_hint="NAME") from None


if __name__ == "__main__":
    data()
