"""Code-size statistics of the package: module lengths and function lengths.

A function's length is its lines from ``def`` (its first decorator excluded) to its last line
(``ast`` ``end_lineno``), docstring and comments included; nested functions and methods count
on their own too, and their lines also count in the enclosing function. Reads the sources only
(``ast``), imports nothing of the package, so it runs anywhere in a second.

    python3 bench/code_stats.py                 # edge/ train/ convert/
    python3 bench/code_stats.py --json out.json --top 20 edge
    python3 bench/code_stats.py --root /tmp/old-checkout   # another tree (git worktree, archive)

Exit status 1 when ``--max-module`` or ``--max-p90`` is given and exceeded (a check for CI or a
pre-commit hook); 0 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PACKAGES = ("edge", "train", "convert")


@dataclass(frozen=True)
class Function:
    """One ``def`` or ``async def``: where it is and how many lines it spans."""

    path: str
    name: str
    line: int
    lines: int


def functions_of(path: Path, root: Path = ROOT) -> list[Function]:
    """Every function and method in one source file, nested ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    out: list[Function] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                end = child.end_lineno or child.lineno
                out.append(Function(rel, name, child.lineno, end - child.lineno + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def percentile(values: list[int], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation, as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def sources(packages: list[str], root: Path = ROOT) -> list[Path]:
    """The ``.py`` files under each package folder, sorted."""
    return sorted(p for pkg in packages for p in (root / pkg).rglob("*.py"))


def stats(packages: list[str], top: int = 15, root: Path = ROOT) -> dict[str, object]:
    """Module and function length statistics of ``packages`` (folders under ``root``)."""
    files = sources(packages, root)
    funcs = [f for p in files for f in functions_of(p, root)]
    lengths = [f.lines for f in funcs]
    modules = sorted(
        (
            (str(p.relative_to(root)), len(p.read_text(encoding="utf-8").splitlines()))
            for p in files
        ),
        key=lambda m: -m[1],
    )
    return {
        "packages": packages,
        "modules": len(files),
        "largest_modules": [{"path": p, "lines": n} for p, n in modules[:top]],
        "functions": len(funcs),
        "median": statistics.median(lengths) if lengths else math.nan,
        "p90": percentile(lengths, 0.9),
        "longest": [asdict(f) for f in sorted(funcs, key=lambda f: -f.lines)[:top]],
    }


def _print(report: dict[str, object]) -> None:
    print(f"packages: {' '.join(report['packages'])}  modules: {report['modules']}")  # type: ignore[arg-type]
    print("largest modules (lines):")
    for m in report["largest_modules"][:5]:  # type: ignore[index]
        print(f"  {m['lines']:5d}  {m['path']}")
    print(
        f"functions: {report['functions']}  median: {report['median']:g} lines  "
        f"p90: {report['p90']:g} lines"
    )
    print("longest functions (lines):")
    for f in report["longest"]:  # type: ignore[attr-defined]
        print(f"  {f['lines']:5d}  {f['path']}:{f['line']}  {f['name']}")


def main(argv: list[str] | None = None) -> int:
    """Command line: print (and optionally save) the statistics; check optional limits."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("packages", nargs="*", default=list(DEFAULT_PACKAGES))
    ap.add_argument("--root", type=Path, default=ROOT, help="tree to measure (default: this one)")
    ap.add_argument("--top", type=int, default=15, help="longest functions/modules to list")
    ap.add_argument("--json", type=Path, help="also write the statistics as JSON here")
    ap.add_argument("--max-module", type=int, help="fail when a module has more lines")
    ap.add_argument("--max-p90", type=float, help="fail when p90 function length is higher")
    args = ap.parse_args(argv)
    report = stats(args.packages, args.top, args.root.resolve())
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    failed = False
    biggest = report["largest_modules"][0]["lines"] if report["largest_modules"] else 0  # type: ignore[index]
    if args.max_module is not None and biggest > args.max_module:
        print(f"FAIL: a module has {biggest} lines > {args.max_module}", file=sys.stderr)
        failed = True
    if args.max_p90 is not None and report["p90"] > args.max_p90:  # type: ignore[operator]
        print(f"FAIL: p90 {report['p90']:g} > {args.max_p90:g}", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # Piped into `head`: the reader left early, which is not an error. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
