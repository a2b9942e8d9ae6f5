"""Drives Helm's own engine (the helm-python-sdk package, which bundles Helm's Go SDK) for the
chart tests: lint a chart, or render it with values files layered like `helm upgrade -f a -f b
--set-json`. Prints one JSON document on stdout; rendering failures (schema violations,
`fail` in templates) are data, reported as {"ok": false, "error": ...}, not exceptions.

usage:
  helm_engine.py lint CHART_DIR
  helm_engine.py render CHART_DIR [-f VALUES.yaml]... [--set-json JSON] [--name N]
                 [--namespace NS] [--upgrade]
"""

import argparse
import json
import sys

import helm_python as helm


def deep_merge(base, override):
    """Merges like Helm merges values files: maps recursively, everything else replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    lint = sub.add_parser("lint")
    lint.add_argument("chart")
    render = sub.add_parser("render")
    render.add_argument("chart")
    render.add_argument("-f", "--values", action="append", default=[])
    render.add_argument("--set-json", default=None)
    render.add_argument("--name", default="atlasai-tp")
    render.add_argument("--namespace", default="atlasai")
    render.add_argument("--upgrade", action="store_true")
    args = parser.parse_args()

    if args.command == "lint":
        print(json.dumps(helm.lint(args.chart)))
        return 0

    values = {}
    for path in args.values:
        with open(path, encoding="utf-8") as f:
            values = deep_merge(values, helm.values_from_yaml(f.read()) or {})
    if args.set_json:
        values = deep_merge(values, json.loads(args.set_json))
    chart = helm.Chart.load(args.chart)
    try:
        manifests = chart.render(
            values,
            name=args.name,
            namespace=args.namespace,
            revision=2 if args.upgrade else 1,
            is_install=not args.upgrade,
            is_upgrade=args.upgrade,
        )
    except helm.HelmError as e:
        print(json.dumps({"ok": False, "error": str(e)}))
        return 0
    print(json.dumps({"ok": True, "manifests": manifests}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
