#!/usr/bin/env python3
"""Statistics and the results table of the bench/ scripts.

  stats.py summary NAME FILE [--unit ms] [--target-median X] [--target-p95 Y] [--target-max Z]
        FILE holds one number per line. Prints `RESULT name=NAME n= median_<unit>= p95_<unit>=
        min_<unit>= max_<unit>=` and records the row in $BENCH_RESULTS for the table.
  stats.py ratio NAME A B
        median(A)/median(B) and p95(A)/p95(B) of two recorded rows; prints `RESULT name=NAME ...`.
  stats.py table [TITLE]
        The recorded rows as an aligned table, with each target and whether it was met.

p95 is the linear interpolation between closest ranks (numpy's default, "type 7"); with 20
samples it lies between the 19th and the 20th value, so it is close to the worst run.
"""
import json
import os
import statistics
import sys


def quantile(xs, q):
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def results_path():
    p = os.environ.get("BENCH_RESULTS")
    if not p:
        sys.exit("stats.py: BENCH_RESULTS is not set")
    return p


def load():
    rows = {}
    try:
        with open(results_path(), encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                rows[r["name"]] = r
    except FileNotFoundError:
        pass
    return rows


def record(row):
    with open(results_path(), "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def fmt(x):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return "%.0f" % x
    if abs(x) >= 10:
        return "%.1f" % x
    return "%.2f" % x


def summary(argv):
    name, path = argv[0], argv[1]
    opts = {"--unit": "ms", "--target-median": None, "--target-p95": None, "--target-max": None}
    rest = argv[2:]
    while rest:
        k, v = rest[0], rest[1]
        if k not in opts:
            sys.exit("stats.py: unknown option " + k)
        opts[k] = v
        rest = rest[2:]
    with open(path, encoding="utf-8") as f:
        xs = [float(line) for line in f if line.strip()]
    if not xs:
        sys.exit("stats.py: no samples for " + name)
    unit = opts["--unit"]
    row = {
        "name": name, "unit": unit, "n": len(xs),
        "median": statistics.median(xs), "p95": quantile(xs, 0.95),
        "min": min(xs), "max": max(xs),
    }
    verdicts = []
    for key, stat in (("--target-median", "median"), ("--target-p95", "p95"), ("--target-max", "max")):
        if opts[key] is not None:
            t = float(opts[key])
            row["target_" + stat] = t
            verdicts.append(row[stat] <= t)
    if verdicts:
        row["met"] = all(verdicts)
    record(row)
    line = "RESULT name=%s n=%d median_%s=%.3f p95_%s=%.3f min_%s=%.3f max_%s=%.3f" % (
        name, row["n"], unit, row["median"], unit, row["p95"], unit, row["min"], unit, row["max"])
    if "met" in row:
        line += " target_met=%s" % ("yes" if row["met"] else "no")
    print(line)


def ratio(argv):
    name, a, b = argv
    rows = load()
    ra, rb = rows[a], rows[b]
    row = {"name": name, "unit": "x", "ratio_of": [a, b],
           "median": ra["median"] / rb["median"] if rb["median"] else None,
           "p95": ra["p95"] / rb["p95"] if rb["p95"] else None}
    record(row)
    print("RESULT name=%s ratio_median=%s ratio_p95=%s of=%s/%s" % (
        name, fmt(row["median"]), fmt(row["p95"]), a, b))


def table(argv):
    rows = list(load().values())
    if argv:
        print("\n" + argv[0])
    head = ["metric", "n", "median", "p95", "min", "max", "unit", "target", "met"]
    out = [head]
    for r in rows:
        if r["unit"] == "x":
            out.append([r["name"], "", fmt(r["median"]), fmt(r["p95"]), "", "", "ratio", "", ""])
            continue
        targets = []
        for stat in ("median", "p95", "max"):
            if "target_" + stat in r:
                targets.append("%s<=%s" % (stat, fmt(r["target_" + stat])))
        met = "" if "met" not in r else ("yes" if r["met"] else "NO")
        out.append([r["name"], str(r["n"]), fmt(r["median"]), fmt(r["p95"]), fmt(r["min"]),
                    fmt(r["max"]), r["unit"], " ".join(targets), met])
    widths = [max(len(row[i]) for row in out) for i in range(len(head))]
    for k, row in enumerate(out):
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) if i < 7 else row[i].ljust(widths[i])
                                             for i in range(1, len(head))]
        print("  ".join(cells).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, argv = sys.argv[1], sys.argv[2:]
    {"summary": summary, "ratio": ratio, "table": table}.get(cmd, lambda _: sys.exit(__doc__))(argv)


if __name__ == "__main__":
    main()
