#!/bin/sh
# bench/summary.sh FILE... — the figures of a `make bench` run side by side.
#
# Every bench script ends with one line per figure it measures:
#
#     FIGURE <name> <value> <anchor> <goal>
#
#   name    one word: [a-z0-9_] (pipeline_vs_raw_api, health_check,
#           context_upload, checkout_fresh_file, ...)
#   value   stagepipe's median, a plain number (seconds unless the name
#           says otherwise; "." as decimal point)
#   anchor  the median of what it is compared with, in the same unit
#   goal    ratio<=X  value/anchor at most X   (also ratio<X, ratio>=X, ratio>X)
#           value<=X  value at most X          (also value<X, value>=X, value>X)
#           -         no goal, shown for information
#
# This script reads those lines from FILEs (a run's saved output; other
# lines are ignored) and prints a table: value, anchor, ratio, goal and
# whether it is met.  A script that failed prints no FIGURE line; the
# Makefile lists it under the table.
set -eu
awk '
function met(goal, v, r,    op, x, y) {
	if (goal == "-")
		return "-"
	if (!match(goal, /^(ratio|value)(<=|>=|<|>)/))
		return "?"
	y = substr(goal, 1, 5) == "ratio" ? r : v
	op = substr(goal, 6, RLENGTH - 5)
	x = substr(goal, RLENGTH + 1) + 0
	if (y == "")
		return "?"
	if (op == "<=") return y <= x ? "yes" : "NO"
	if (op == ">=") return y >= x ? "yes" : "NO"
	if (op == "<") return y < x ? "yes" : "NO"
	return y > x ? "yes" : "NO"
}
$1 == "FIGURE" && NF >= 5 {
	n++
	name[n] = $2; v[n] = $3; a[n] = $4; g[n] = $5
	r[n] = ($4 + 0 != 0) ? sprintf("%.3f", $3 / $4) : ""
}
END {
	if (!n) { print "no FIGURE lines"; exit 0 }
	printf "%-26s %10s %10s %8s  %-12s %s\n", "figure", "stagepipe", "anchor", "ratio", "goal", "met"
	for (i = 1; i <= n; i++)
		printf "%-26s %10s %10s %8s  %-12s %s\n", name[i], v[i], a[i], r[i] == "" ? "-" : r[i], g[i], met(g[i], v[i], r[i])
}' "$@"
