#!/usr/bin/env python3
"""Fills docs/report.in.md's markers and writes docs/report.md (stdlib only).

  bench/render_report.py TEMPLATE OUT FIGDIR --command "..." [--set key=value ...] [--notes FILE]

Markers: {{date}}, {{command}}, {{tables:<dataset>}} (FIGDIR/<dataset>/tables.md, written by
bench/plot_report.py), {{notes}} (the --notes file, or nothing), and {{key}} for every --set.
An unknown marker is an error, so that a typo cannot ship a report with holes.
"""
import argparse
import datetime
import os
import re
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("template")
    ap.add_argument("out")
    ap.add_argument("figdir")
    ap.add_argument("--command", required=True, help="the command that regenerates the report")
    ap.add_argument("--set", action="append", default=[], help="key=value for {{key}}")
    ap.add_argument("--notes", help="Markdown file for {{notes}}")
    args = ap.parse_args()

    try:
        with open(args.template) as f:
            text = f.read()
    except OSError as e:
        sys.exit(f"render_report.py: cannot read {args.template}: {e.strerror}")
    values = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": args.command, "notes": ""}
    for kv in args.set:
        if "=" not in kv:
            sys.exit(f"render_report.py: --set needs key=value (got '{kv}')")
        k, v = kv.split("=", 1)
        values[k] = v
    if args.notes:
        with open(args.notes) as f:
            values["notes"] = f.read().strip()

    def fill(m):
        key = m.group(1)
        if key.startswith("tables:"):
            path = os.path.join(args.figdir, key.split(":", 1)[1], "tables.md")
            if not os.path.exists(path):
                return f"*(no results: {path} is missing; run bench/report.sh)*"
            with open(path) as f:
                return f.read().strip()
        if key not in values:
            sys.exit(f"render_report.py: {args.template} has an unknown marker {{{{{key}}}}}")
        return values[key]

    # the template's HTML comment mentions the marker syntax; keep it out of the output
    text = re.sub(r"<!--.*?-->\n?", "", text, flags=re.S)
    text = re.sub(r"\{\{([a-zA-Z0-9_:\-]+)\}\}", fill, text)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
